//! Tests of `sockdiag`.

use super::*;
use std::net::{TcpListener, TcpStream};

#[test]
fn port_filter_bytecode_layout() {
    let bc = port_bytecode(0x1234);
    assert_eq!(bc.len(), 20);
    assert_eq!(&bc[..4], &[INET_DIAG_BC_S_EQ, 8, 12, 0]);
    assert_eq!(u16::from_ne_bytes([bc[6], bc[7]]), 0x1234);
    assert_eq!(&bc[8..12], &[INET_DIAG_BC_JMP, 4, 12, 0]);
    assert_eq!(&bc[12..16], &[INET_DIAG_BC_D_EQ, 8, 12, 0]);
}

#[test]
fn attribute_is_appended_and_length_fixed() {
    let mut buf = vec![0u8; 16];
    buf[..4].copy_from_slice(&16u32.to_ne_bytes());
    append_attribute(&mut buf, 1, &[1, 2, 3]);
    assert_eq!(buf.len(), 24);
    assert_eq!(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]), 24);
    assert_eq!(u16::from_ne_bytes([buf[16], buf[17]]), 7);
}

#[test]
fn dump_finds_a_loopback_connection_and_the_port_filter_selects_it() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_server, _) = listener.accept().expect("accept");
    let local = client.local_addr().expect("addr");
    let mut diag = SockDiag::open().expect("sock_diag");
    let mut seen = Vec::new();
    diag.dump(AF_INET, watch_states(), Some(port), |e| seen.push(*e))
        .expect("dump");
    // Both ends match: the client by its remote port, the server by its local one.
    assert_eq!(seen.len(), 2, "{seen:?}");
    let mine = seen
        .iter()
        .find(|e| e.local == local)
        .expect("client socket");
    assert_eq!(mine.state, TCP_ESTABLISHED);
    assert_eq!(mine.timer, TimerKind::None);
    assert_eq!(mine.info.expect("INET_DIAG_INFO").state, TCP_ESTABLISHED);
    let found = diag.lookup(local, mine.peer).expect("lookup");
    assert_eq!(found.map(|e| e.cookie), Some(mine.cookie));
}

#[test]
fn destroy_notification_carries_the_cookie_and_the_fin_counts() {
    use std::io::Read;
    let mut destroyed = DestroyListener::open().expect("destroy listener");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let mut diag = SockDiag::open().expect("sock_diag");
    let mut cookie = None;
    let local = client.local_addr().expect("addr");
    diag.dump(AF_INET, watch_states(), Some(port), |e| {
        if e.local == local {
            cookie = Some(e.cookie)
        }
    })
    .expect("dump");
    // The server closes first; the client reads EOF and closes second
    // (CLOSE_WAIT -> LAST_ACK -> destroyed when the server's kernel ACKs).
    drop(server);
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).expect("read EOF"), 0);
    drop(client);
    let mut found = None;
    for _ in 0..200 {
        destroyed
            .drain(|e| {
                if Some(e.cookie) == cookie {
                    found = Some(*e)
                }
            })
            .expect("drain");
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let e = found.expect("a destroy message for the client socket");
    assert_eq!(e.inode, 0);
    let info = e.info.expect("INET_DIAG_INFO");
    // Its FIN was acknowledged: bytes_acked = data (0) + SYN + FIN.
    assert_eq!(info.bytes_acked, 2, "{info:?}");
    // The server's FIN: bytes_received = data (0) + FIN.
    assert_eq!(info.bytes_received, 1, "{info:?}");
}

#[test]
fn exact_lookup_finds_the_socket_by_cookie_and_not_a_stale_one() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let local = client.local_addr().expect("addr");
    let mut diag = SockDiag::open().expect("sock_diag");
    let mut mine = None;
    diag.dump(AF_INET, watch_states(), Some(port), |e| {
        if e.local == local {
            mine = Some(*e)
        }
    })
    .expect("dump");
    let mine = mine.expect("client socket in the dump");
    let again = diag.lookup_exact(&mine).expect("lookup").expect("found");
    assert_eq!(again.cookie, mine.cookie);
    assert_eq!(again.state, TCP_ESTABLISHED);
    assert!(again.info.is_some(), "the look-up carries TCP_INFO");
    // Another cookie on the same four-tuple is another socket: not this one.
    let stale = DiagEntry {
        cookie: mine.cookie ^ 1,
        ..mine
    };
    assert_eq!(diag.lookup_exact(&stale).expect("lookup"), None);
    // Gone entirely (both ends closed, the client's in TIME_WAIT is not it:
    // TIME_WAIT sockets have their own cookie), or not in ESTABLISHED any more.
    drop(client);
    drop(server);
    let after = diag.lookup_exact(&mine).expect("lookup");
    assert!(
        after.is_none_or(|e| e.state != TCP_ESTABLISHED),
        "{after:?}"
    );
}

#[test]
fn exact_lookup_of_a_dual_stack_socket_talking_ipv4() {
    // A listener on [::] accepts IPv4 as IPv4-mapped addresses; the dump shows
    // them canonical (plain IPv4) and the look-up must map them back.
    let Ok(listener) = TcpListener::bind("[::]:0") else {
        eprintln!("SKIPPED: no IPv6 here");
        return;
    };
    let port = listener.local_addr().expect("addr").port();
    let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let local = server.local_addr().expect("addr");
    let mut diag = SockDiag::open().expect("sock_diag");
    let mut mine = None;
    diag.dump(AF_INET6, watch_states(), Some(port), |e| {
        if e.local.port() == local.port() {
            mine = Some(*e)
        }
    })
    .expect("dump");
    let mine = mine.expect("the accepted socket in the AF_INET6 dump");
    assert!(mine.local.is_ipv4(), "canonical: {mine:?}");
    let again = diag.lookup_exact(&mine).expect("lookup");
    assert_eq!(again.map(|e| e.cookie), Some(mine.cookie));
}

#[test]
fn thread_cpu_time_grows_with_work() {
    let before = thread_cpu_time();
    let mut x = 0u64;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(20) {
        x = x.wrapping_add(std::hint::black_box(1));
    }
    assert!(x > 0);
    assert!(thread_cpu_time() > before);
}
