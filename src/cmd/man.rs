//! `tcpalive man`: prints the top page, `tcpalive man PAGE` one subcommand's page,
//! `tcpalive man --dir DIR` writes every page (tcpalive.1, tcpalive-connect.1,
//! ...). The pages are rendered by `report::man` from `cli::Cli`'s definition;
//! this only says where they go.

use clap::CommandFactory;

use crate::cli;
use crate::config::ManConfig;
use crate::engine::run::RunError;
use crate::model::event::Finished;
use crate::report::man;

/// One page to stdout, or every page into a directory.
pub fn run(cfg: &ManConfig) -> Result<Finished, RunError> {
    let top = cli::Cli::command();
    match cfg {
        ManConfig::Print(page) => {
            let text =
                man::page(&top, page.as_deref()).map_err(RunError::io("generate the text"))?;
            super::print_text(&text)
        }
        ManConfig::Dir(dir) => write_all(&top, dir),
    }
}

/// `man --dir DIR`: every page into DIR; the end message lists them.
fn write_all(top: &clap::Command, dir: &std::path::Path) -> Result<Finished, RunError> {
    let pages = man::all_pages(top).map_err(RunError::io("generate the man pages"))?;
    // As `install -d`: the man1 directory of a fresh prefix often does not exist.
    std::fs::create_dir_all(dir).map_err(RunError::socket("create", dir.display()))?;
    let mut names = Vec::new();
    for (name, text) in pages {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(RunError::socket("write", path.display()))?;
        names.push(name);
    }
    let listing = format!("{}\n", names.join("\n"));
    super::print_text(listing.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_every_page() {
        let mut offered = cli::man_page_names();
        let mut pages = man::page_names(&cli::Cli::command());
        offered.sort_unstable();
        pages.sort_unstable();
        assert_eq!(offered, pages);
    }
}
