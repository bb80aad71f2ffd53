//! `plan`: evaluate or recommend, then render. No sockets: the model is pure and
//! the result does not depend on this host.

use crate::config::plan::PlanConfig;
use crate::engine::run::RunError;
use crate::model::event::Finished;
use crate::model::plan::{Source, evaluate, presets, recommend, snippets};
use crate::report;

pub fn run(cfg: &PlanConfig) -> Result<Finished, RunError> {
    if cfg.list_paths {
        let text = if cfg.json {
            report::plan::presets_json(presets::PRESETS)
        } else {
            report::plan::presets_human(presets::PRESETS)
        };
        return super::print_text(text.as_bytes());
    }
    let plan = match cfg.detect_within {
        Some(within) => recommend(
            cfg.stack,
            within,
            cfg.request.path.as_ref(),
            cfg.request.rtt,
        ),
        None => evaluate(cfg.stack, &cfg.request, Source::User),
    };
    // Code is printed when there is something to apply: given or recommended values.
    let applies = [&plan.idle, &plan.intvl, &plan.cnt, &plan.user_timeout]
        .iter()
        .any(|k| matches!(k.source, Source::User | Source::Recommended));
    let code = if applies && plan.keepalive {
        snippets::for_plan(&plan)
    } else {
        Vec::new()
    };
    let text = if cfg.json {
        report::plan::json(&plan, &snippets::for_plan(&plan))
    } else {
        report::plan::human(&plan, &code)
    };
    super::print_text(text.as_bytes())
}
