//! Tests of `live`.

use super::*;
use crate::sys::sockdiag::TimerKind;

fn entry(inode: u32) -> DiagEntry {
    DiagEntry {
        family: libc::AF_INET as u8,
        state: TCP_ESTABLISHED,
        timer: TimerKind::None,
        expires: Duration::ZERO,
        local: "127.0.0.1:1".parse().expect("addr"),
        peer: "127.0.0.1:2".parse().expect("addr"),
        uid: 0,
        inode,
        cookie: u64::from(inode),
        send_queue: 0,
        recv_queue: 0,
        info: None,
    }
}

/// Issue 12 #10: under churn `watch --pid` remembered every socket inode that
/// was not the process's, for ever: memory grew without bound.
#[test]
fn not_pid_set_holds_only_sockets_still_open() {
    let mut f = Filter {
        addresses: AddressFilter::default(),
        pid: Some(std::process::id()),
        pids: Vec::new(),
        pid_inodes: HashSet::new(),
        not_pid: HashSet::new(),
    };
    // 1000 passes, each seeing 100 new connections of other processes.
    for pass in 0..1000u32 {
        let fresh: Vec<DiagEntry> = (0..100)
            .map(|i| entry(1_000_000 + pass * 100 + i))
            .collect();
        f.settle_pid(&fresh).expect("settle");
        assert!(f.not_pid.len() <= 100, "{} remembered", f.not_pid.len());
    }
}
