//! The IPC bridge end to end over a real unix socket: every request, bad
//! frames, disconnects in the middle of requests, peer credentials.

mod support;

use cells::ipc::client::{remote_error, Connection, Endpoint};
use cells::ipc::frame::{write_frame, FrameReader, Incoming, MAGIC, MAX_FRAME};
use cells::ipc::proto::{
    decode, encode, BackupTarget, Envelope, ErrorKind, Request, Response, PROTOCOL_VERSION,
};
use cells::ipc::server::{serve_socket, serve_stream, Access};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::ipc::{cell, frame, hello, volume, Fake, FakeServer};
use support::{names, run_helper_as, wait_for, wait_until};

/// A served fake with the cells web (running) and db, and the volume data
/// used by web; with `held`, actions wait after their begin until the test
/// opens the fake's gate.
fn start_server(name: &str, held: bool) -> FakeServer {
    let s = FakeServer::new(&format!("ipc-{name}"), |log_dir| {
        let fake = Fake::new(
            vec![cell("web", true), cell("db", false)],
            vec![volume("data", "web")],
            log_dir,
        );
        if held {
            fake.gate.close();
        }
        fake
    });
    s.serve();
    s
}

fn connect(s: &FakeServer) -> Connection {
    Connection::open(&Endpoint::Socket(s.socket.clone()), false).unwrap()
}

fn read_reply(r: &mut FrameReader<&UnixStream>) -> Envelope<Response> {
    match r.read().unwrap() {
        Incoming::Frame(f) => decode(&f).unwrap(),
        other => panic!("expected a reply frame, got {other:?}"),
    }
}

fn error_kind(resp: &Response) -> Option<ErrorKind> {
    match resp {
        Response::Error(e) => Some(e.kind),
        _ => None,
    }
}

#[test]
fn every_request_gets_its_reply() {
    let s = start_server("every", false);
    let mut c = connect(&s);
    assert!(c.info.server.starts_with("cellmgr"));
    std::fs::write(s.dir.join("web.log"), "one\ntwo\nthree\n").unwrap();

    assert_eq!(c.call(Request::Ping).unwrap(), Response::Pong);
    let Response::Cells(cells) = c.call(Request::Cells).unwrap() else {
        panic!()
    };
    assert_eq!(cells.len(), 2);
    let Response::Volumes(vols) = c.call(Request::Volumes).unwrap() else {
        panic!()
    };
    assert_eq!(vols[0].used_by, "web");

    // Poll: unchanged data is not sent again; a change is.
    let Response::Snapshot { token, data } = c.call(Request::Snapshot { since: None }).unwrap()
    else {
        panic!()
    };
    assert_eq!(data.unwrap().cells.len(), 2);
    let again = c.call(Request::Snapshot { since: Some(token) }).unwrap();
    assert_eq!(again, Response::Snapshot { token, data: None });

    let stop = c
        .call(Request::Stop {
            cells: names(&["web"]),
        })
        .unwrap();
    assert_eq!(
        stop,
        Response::Done {
            message: "stop web".into()
        }
    );
    let Response::Snapshot { token: t2, data } =
        c.call(Request::Snapshot { since: Some(token) }).unwrap()
    else {
        panic!()
    };
    assert_ne!(t2, token);
    assert!(!data.unwrap().cells.iter().any(|c| c.running));
    assert!(matches!(
        c.call(Request::Start {
            cells: names(&["web"])
        }),
        Ok(Response::Done { .. })
    ));
    assert!(matches!(
        c.call(Request::Restart {
            cells: names(&["db"])
        }),
        Ok(Response::Done { .. })
    ));

    // Errors carry the engine's words.
    let err = c
        .call(Request::Start {
            cells: names(&["nope"]),
        })
        .unwrap_err();
    let remote = remote_error(&err).expect("a remote error");
    assert_eq!(remote.kind, ErrorKind::Failed);
    assert_eq!(
        remote.message,
        "cell 'nope' not found: no manifest nope.cell"
    );

    // Apply must quote the plan it was shown.
    let Response::Plan(plan) = c.call(Request::Plan { cells: vec![] }).unwrap() else {
        panic!()
    };
    assert_eq!(plan.steps.len(), 2);
    let stale = c
        .call(Request::Apply {
            cells: vec![],
            plan_token: format!("{}0", plan.token),
        })
        .unwrap_err();
    assert!(stale.to_string().contains("plan changed"), "{stale}");
    assert!(matches!(
        c.call(Request::Apply {
            cells: vec![],
            plan_token: plan.token
        }),
        Ok(Response::Done { .. })
    ));

    let target = BackupTarget::Volume("data".into());
    let Response::BackupCreated(b) = c
        .call(Request::BackupCreate {
            target: target.clone(),
            quiesce: false,
        })
        .unwrap()
    else {
        panic!()
    };
    let Response::Backups(list) = c
        .call(Request::Backups {
            target: target.clone(),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(list, vec![b.clone()]);
    let restore = Request::BackupRestore {
        target: target.clone(),
        archive: b.archive,
    };
    assert!(matches!(c.call(restore), Ok(Response::Done { .. })));
    let bogus = Request::BackupRestore {
        target,
        archive: "/etc/passwd".into(),
    };
    assert!(c.call(bogus).is_err());

    let Response::Log(log) = c
        .call(Request::LogTail {
            cell: "web".into(),
            lines: 2,
            offset: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(log.lines, ["two", "three"]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.dir.join("web.log"))
        .unwrap();
    writeln!(f, "four").unwrap();
    let follow = Request::LogTail {
        cell: "web".into(),
        lines: 100,
        offset: Some(log.offset),
    };
    let Response::Log(more) = c.call(follow).unwrap() else {
        panic!()
    };
    assert_eq!(more.lines, ["four"]);

    assert_eq!(c.call(Request::Bye).unwrap(), Response::Bye);
}

#[test]
fn garbage_and_oversized_frames_get_errors_and_the_session_goes_on() {
    let s = start_server("garbage", false);
    let stream = UnixStream::connect(&s.socket).unwrap();
    let mut r = FrameReader::new(&stream);
    let mut w = &stream;
    w.write_all(&frame(1, &hello())).unwrap();
    assert!(matches!(read_reply(&mut r).body, Response::Hello { .. }));

    w.write_all(b"this is not a frame\n\x00\xff").unwrap();
    let e = read_reply(&mut r);
    assert_eq!((e.id, error_kind(&e.body)), (0, Some(ErrorKind::Frame)));

    let mut bad_cbor = Vec::new();
    write_frame(&mut bad_cbor, b"\xff\xfe not cbor").unwrap();
    w.write_all(&bad_cbor).unwrap();
    assert_eq!(
        error_kind(&read_reply(&mut r).body),
        Some(ErrorKind::Decode)
    );

    let mut wrong_shape = Vec::new();
    write_frame(
        &mut wrong_shape,
        &encode(&Envelope {
            id: 4,
            body: "Reboot",
        }),
    )
    .unwrap();
    w.write_all(&wrong_shape).unwrap();
    assert_eq!(
        error_kind(&read_reply(&mut r).body),
        Some(ErrorKind::Decode)
    );

    let big = MAX_FRAME + 1;
    w.write_all(&MAGIC).unwrap();
    w.write_all(&(big as u32).to_be_bytes()).unwrap();
    assert_eq!(
        error_kind(&read_reply(&mut r).body),
        Some(ErrorKind::TooLarge)
    );
    w.write_all(&vec![0x55; big]).unwrap();

    w.write_all(&frame(9, &Request::Ping)).unwrap();
    assert_eq!(
        read_reply(&mut r),
        Envelope {
            id: 9,
            body: Response::Pong
        }
    );
    assert!(s.fake.journal().is_empty());
}

#[test]
fn a_truncated_request_is_answered_and_never_acted_on() {
    let s = start_server("truncated", false);
    let stream = UnixStream::connect(&s.socket).unwrap();
    let mut r = FrameReader::new(&stream);
    (&stream).write_all(&frame(1, &hello())).unwrap();
    read_reply(&mut r);
    let stop = frame(
        2,
        &Request::Stop {
            cells: names(&["web"]),
        },
    );
    (&stream).write_all(&stop[..stop.len() - 3]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(error_kind(&read_reply(&mut r).body), Some(ErrorKind::Frame));
    assert_eq!(r.read().unwrap(), Incoming::End { truncated: false });

    // Nothing happened, and the server still serves.
    let mut c = connect(&s);
    let Response::Cells(cells) = c.call(Request::Cells).unwrap() else {
        panic!()
    };
    assert!(cells.iter().find(|c| c.name == "web").unwrap().running);
    assert!(s.fake.journal().is_empty());
}

#[test]
fn a_client_leaving_mid_action_leaves_the_action_whole() {
    let s = start_server("leave", true);
    {
        let mut c = connect(&s);
        c.send(&Request::Stop {
            cells: names(&["web"]),
        })
        .unwrap();
        // Wait until the action has begun, then vanish; only then may it end.
        wait_until(
            "the action to begin",
            Duration::from_secs(20),
            Duration::from_millis(5),
            || !s.fake.journal().is_empty(),
        );
    }
    assert_eq!(s.fake.journal(), ["begin stop web"]);
    s.fake.gate.open();
    wait_until(
        "the action to finish",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || s.fake.journal().len() >= 2,
    );
    assert_eq!(s.fake.journal(), ["begin stop web", "end stop web"]);
    let mut c = connect(&s);
    let Response::Cells(cells) = c.call(Request::Cells).unwrap() else {
        panic!()
    };
    assert!(!cells.iter().find(|c| c.name == "web").unwrap().running);
}

#[test]
fn the_handshake_comes_first_and_versions_must_match() {
    let s = start_server("handshake", false);
    let stream = UnixStream::connect(&s.socket).unwrap();
    let mut r = FrameReader::new(&stream);
    (&stream)
        .write_all(&frame(
            1,
            &Request::Stop {
                cells: names(&["web"]),
            },
        ))
        .unwrap();
    assert_eq!(
        error_kind(&read_reply(&mut r).body),
        Some(ErrorKind::Handshake)
    );
    let future = Request::Hello {
        version: PROTOCOL_VERSION + 1,
        client: "future".into(),
    };
    (&stream).write_all(&frame(2, &future)).unwrap();
    let e = read_reply(&mut r);
    assert_eq!(error_kind(&e.body), Some(ErrorKind::Handshake));
    assert_eq!(r.read().unwrap(), Incoming::End { truncated: false });
    assert!(s.fake.journal().is_empty());
}

/// The same session code over a plain byte stream, as `--stdio` runs it.
#[test]
fn a_stdio_session_survives_garbage_and_reports_truncation() {
    let fake = Fake::new(vec![cell("web", true)], vec![], std::env::temp_dir());
    let mut input = frame(1, &hello());
    input.extend_from_slice(b"\x00\x01garbage");
    input.extend(frame(2, &Request::Ping));
    let stop = frame(
        3,
        &Request::Stop {
            cells: names(&["web"]),
        },
    );
    input.extend_from_slice(&stop[..stop.len() / 2]);
    let mut output = Vec::new();
    serve_stream(&input[..], &mut output, &fake, &Mutex::new(())).unwrap();
    let mut r = FrameReader::new(&output[..]);
    let mut replies = Vec::new();
    while let Incoming::Frame(f) = r.read().unwrap() {
        replies.push(decode::<Envelope<Response>>(&f).unwrap());
    }
    assert!(matches!(replies[0].body, Response::Hello { .. }));
    assert_eq!(error_kind(&replies[1].body), Some(ErrorKind::Frame));
    assert_eq!(
        replies[2],
        Envelope {
            id: 2,
            body: Response::Pong
        }
    );
    assert_eq!(error_kind(&replies[3].body), Some(ErrorKind::Frame));
    assert_eq!(replies.len(), 4);
    assert!(fake.journal().is_empty());
}

const PEER_ENV: &str = "CELLS_TEST_PEER_SOCKET";

/// Not a test on its own: the unprivileged client that
/// `the_socket_is_private_and_peers_are_checked` runs as another user.
#[test]
fn peer_helper() {
    let Ok(path) = std::env::var(PEER_ENV) else {
        return;
    };
    match Connection::open(&Endpoint::Socket(path.into()), false) {
        Ok(_) => println!("PEER-RESULT: accepted"),
        Err(e) => println!("PEER-RESULT: {:?} {e:#}", remote_error(&e).map(|r| r.kind)),
    }
}

#[test]
fn the_socket_is_private_and_peers_are_checked() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    let s = start_server("peer", false);
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket must be private to root");

    let run_as_nobody = |path: &Path| {
        run_helper_as(
            "peer_helper",
            (PEER_ENV, path.as_os_str()),
            65534,
            65534,
            "PEER-RESULT",
        )
    };
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The file mode alone keeps others out...
    let refused = run_as_nobody(&s.socket);
    assert!(refused.contains("Permission denied"), "{refused}");
    // ...and with the mode opened, the server still checks the peer's uid.
    std::fs::set_permissions(&s.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let denied = run_as_nobody(&s.socket);
    assert!(
        denied.contains("Some(Denied)") && denied.contains("uid 65534"),
        "{denied}"
    );
    // Root still gets in.
    assert_eq!(connect(&s).call(Request::Ping).unwrap(), Response::Pong);
}

#[test]
fn the_socket_path_is_claimed_carefully() {
    let s = start_server("claim", false);
    let fake: Arc<dyn cells::ipc::server::Backend> = s.fake.clone();
    // A live server keeps its socket.
    let err = serve_socket(&s.socket, fake.clone(), Access::default()).unwrap_err();
    assert!(err.to_string().contains("already listening"), "{err:#}");
    assert_eq!(connect(&s).call(Request::Ping).unwrap(), Response::Pong);
    // Any other file is never replaced.
    let file = s.dir.join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let err = serve_socket(&file, fake.clone(), Access::default()).unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err:#}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
    // A stale socket (its server gone) is replaced.
    let stale = s.dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let path = stale.clone();
    std::thread::spawn(move || serve_socket(&path, fake, Access::default()));
    let mut c = wait_for(
        "the stale socket to be replaced",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || Connection::open(&Endpoint::Socket(stale.clone()), false).ok(),
    );
    assert_eq!(c.call(Request::Ping).unwrap(), Response::Pong);
}
