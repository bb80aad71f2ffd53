//! Two network namespaces joined by a veth pair, for tests that pull a cable.
//! Names and the /30 in 198.18.0.0/15 are unique per process and instance; the
//! namespaces are removed on drop, also when the test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Pair {
    pub a: String,
    pub b: String,
    /// The address of side a and of side b.
    pub addr_a: String,
    pub addr_b: String,
}

/// Runs `ip ARGS`; the error names the command and what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Pair {
    /// Creates the pair, or says why it cannot (not root, no `ip`).
    pub fn new(tag: &str) -> Result<Pair, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (network namespaces need root)".into());
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 4000) * 16 + n % 16;
        let pair = Pair {
            a: format!("tca-{tag}-{id}-a"),
            b: format!("tca-{tag}-{id}-b"),
            // 198.18.0.0/15 holds 32768 /30s: one per id.
            addr_a: format!(
                "198.{}.{}.{}",
                18 + (id >> 14) % 2,
                (id >> 6) % 256,
                (id % 64) * 4 + 1
            ),
            addr_b: format!(
                "198.{}.{}.{}",
                18 + (id >> 14) % 2,
                (id >> 6) % 256,
                (id % 64) * 4 + 2
            ),
        };
        let (va, vb) = (format!("tv{id}a"), format!("tv{id}b"));
        ip(&["netns", "add", &pair.a])?;
        ip(&["netns", "add", &pair.b])?;
        ip(&[
            "link", "add", &va, "netns", &pair.a, "type", "veth", "peer", "name", &vb, "netns",
            &pair.b,
        ])?;
        for (ns, dev, addr) in [(&pair.a, &va, &pair.addr_a), (&pair.b, &vb, &pair.addr_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// A command that runs inside namespace `ns`.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Pulls b's cable: its side of the veth goes down, so a's packets vanish.
    pub fn pull_b(&self) -> Result<(), String> {
        let dev = self.dev_b()?;
        ip(&["-n", &self.b, "link", "set", &dev, "down"])
    }

    fn dev_b(&self) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["-n", &self.b, "-o", "link", "show", "type", "veth"])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(':')
            .nth(1)
            .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no veth in {}", self.b))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}
