//! The bridge's messages: one definition used by the server (`cellmgr ipc serve`)
//! and every client (`cellui`). Each frame carries one CBOR-encoded [`Envelope`]
//! (see [`super::frame`] for the framing). Requests are answered strictly in order,
//! one reply per request, with the request's `id` echoed back.

use crate::model::{CellRow, VolumeRow};
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to the message types below.
pub const PROTOCOL_VERSION: u32 = 2;

/// One frame's payload: a request or a reply, tagged with the id that pairs them.
/// The server answers undecodable frames with id 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

/// What a backup belongs to: a volume's data, or a cell's writable overlay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackupTarget {
    Volume(String),
    Cell(String),
}

impl BackupTarget {
    pub fn name(&self) -> &str {
        match self {
            BackupTarget::Volume(n) | BackupTarget::Cell(n) => n,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            BackupTarget::Volume(_) => "volume",
            BackupTarget::Cell(_) => "cell",
        }
    }
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// One archive, as `cellmgr volume|cell backup list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRow {
    /// The volume or cell name.
    pub name: String,
    /// `YYYYmmddHHMMSS`, UTC.
    pub timestamp: String,
    pub size: u64,
    /// Full path of the archive on the server's host.
    pub archive: String,
}

/// One line of an apply plan (what `cellmgr apply --dry-run` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// What the step acts on: `cell web`, `volume data`.
    pub subject: String,
    /// CREATE, START, RESTART, APPLY, STOP, NOOP, ...
    pub action: String,
    pub detail: String,
}

/// A dry-run plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlanStep>,
    /// True when applying would change something (the CLI's exit code 2).
    pub drift: bool,
    /// Names exactly this plan: the digest `cellmgr apply --dry-run` prints
    /// (`sha256:...`). An `Apply` quotes it, and the apply it runs checks it
    /// under the mutation lock (`--expect-digest`) before changing anything.
    pub token: String,
}

/// A piece of a cell's service log. `offset` is where the next `LogTail` should
/// continue from to follow the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    pub lines: Vec<String>,
    pub offset: u64,
}

/// The read models, together, as one poll of the refresh loop sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub cells: Vec<CellRow>,
    pub volumes: Vec<VolumeRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Must be the first request of a session.
    Hello {
        version: u32,
        client: String,
    },
    Ping,
    /// Poll for refresh: the cells and volumes, unless they are unchanged since
    /// the snapshot whose token is `since` (then `data` is `None`).
    Snapshot {
        since: Option<u64>,
    },
    Cells,
    Volumes,
    Backups {
        target: BackupTarget,
    },
    /// Dry-run of `apply` for these cells (all when empty).
    Plan {
        cells: Vec<String>,
    },
    Start {
        cells: Vec<String>,
    },
    Stop {
        cells: Vec<String>,
    },
    Restart {
        cells: Vec<String>,
    },
    /// Applies the plan `Plan { cells }` returned (quoting its `token`); refused,
    /// with nothing changed, if the plan is no longer that one.
    Apply {
        cells: Vec<String>,
        plan_token: String,
    },
    BackupCreate {
        target: BackupTarget,
        /// Freeze the running cells that write to it while the copy is taken
        /// (`--quiesce`); absent from older clients, meaning no.
        #[serde(default)]
        quiesce: bool,
    },
    /// Replaces the target's contents with `archive` (one of its `Backups`).
    BackupRestore {
        target: BackupTarget,
        archive: String,
    },
    /// The last `lines` lines of the cell's service log, or what was appended
    /// after `offset`.
    LogTail {
        cell: String,
        lines: u32,
        offset: Option<u64>,
    },
    /// Ends the session; the server replies `Bye` and closes.
    Bye,
}

impl Request {
    /// Whether the request changes state (and is serialised with other actions).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Request::Start { .. }
                | Request::Stop { .. }
                | Request::Restart { .. }
                | Request::Apply { .. }
                | Request::BackupCreate { .. }
                | Request::BackupRestore { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Hello {
        version: u32,
        server: String,
        host: String,
    },
    Pong,
    Snapshot {
        token: u64,
        data: Option<Snapshot>,
    },
    Cells(Vec<CellRow>),
    Volumes(Vec<VolumeRow>),
    /// Newest first.
    Backups(Vec<BackupRow>),
    /// Its `token` names exactly this plan: an `Apply` must quote it, so nothing
    /// is applied that the operator has not seen.
    Plan(Plan),
    /// An action succeeded; `message` is what the CLI would print.
    Done {
        message: String,
    },
    BackupCreated(BackupRow),
    Log(LogChunk),
    Bye,
    Error(RemoteError),
}

impl Response {
    /// What kind of reply this is, for messages ("an unexpected snapshot").
    pub fn name(&self) -> &'static str {
        match self {
            Response::Hello { .. } => "hello",
            Response::Pong => "pong",
            Response::Snapshot { .. } => "snapshot",
            Response::Cells(_) => "cell list",
            Response::Volumes(_) => "volume list",
            Response::Backups(_) => "backup list",
            Response::Plan(_) => "plan",
            Response::Done { .. } => "done",
            Response::BackupCreated(_) => "backup created",
            Response::Log(_) => "log chunk",
            Response::Bye => "bye",
            Response::Error(_) => "error",
        }
    }
}

/// Why a request failed. `Failed` carries the engine's own error, worded exactly
/// as the CLI prints it after `cellmgr: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Not a frame: bad magic, or the stream ended inside one.
    Frame,
    /// A frame longer than [`super::frame::MAX_FRAME`].
    TooLarge,
    /// A frame whose payload is not a request this server understands.
    Decode,
    /// No `Hello` yet, or a protocol version this server does not speak.
    Handshake,
    /// The peer may not do this.
    Denied,
    /// The engine refused or failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RemoteError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            message: message.into(),
        }
    }

    /// An engine error, with the context chain joined as the CLI prints it.
    pub fn from_engine(err: &anyhow::Error) -> Self {
        let parts: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        RemoteError::new(ErrorKind::Failed, parts.join(": "))
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Encodes a message as CBOR.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    crate::fs::cbor::encode(msg)
}

/// Decodes a CBOR message; the error says what was wrong with the bytes.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    crate::fs::cbor::decode(bytes).map_err(|e| e.to_string())
}

/// A stable 64-bit digest of a message's encoding (change tokens, plan tokens).
pub fn digest<T: Serialize>(msg: &T) -> u64 {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(encode(msg));
    u64::from_be_bytes(hash[..8].try_into().expect("SHA-256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn sample_cell(name: &str, running: bool) -> CellRow {
        CellRow {
            name: name.into(),
            running,
            desired_state: true,
            cid: running.then_some(7),
            procs: running.then_some(3),
            memory: Some(1 << 20),
            age: Some(42),
            root: format!("/var/cellmgr/cells/{name}/root"),
            create_profile: "high".into(),
            create_reserved_ports: "8080".into(),
            manifest: true,
            rendered: true,
            state: "managed".into(),
            health: "healthy".into(),
            restarts: Some(1),
            ..CellRow::default()
        }
    }

    fn every_request() -> Vec<Request> {
        let names = vec!["web".to_string(), "db".to_string()];
        let vol = BackupTarget::Volume("data".into());
        vec![
            Request::Hello {
                version: PROTOCOL_VERSION,
                client: "test".into(),
            },
            Request::Ping,
            Request::Snapshot { since: Some(9) },
            Request::Cells,
            Request::Volumes,
            Request::Backups {
                target: vol.clone(),
            },
            Request::Plan {
                cells: names.clone(),
            },
            Request::Start {
                cells: names.clone(),
            },
            Request::Stop {
                cells: names.clone(),
            },
            Request::Restart {
                cells: names.clone(),
            },
            Request::Apply {
                cells: vec![],
                plan_token: format!("sha256:{}", "0f".repeat(32)),
            },
            Request::BackupCreate {
                target: BackupTarget::Cell("web".into()),
                quiesce: true,
            },
            Request::BackupRestore {
                target: vol,
                archive: "/b/data_20260101000000.tar.gz".into(),
            },
            Request::LogTail {
                cell: "web".into(),
                lines: 50,
                offset: None,
            },
            Request::Bye,
        ]
    }

    fn request_index(r: &Request) -> usize {
        match r {
            Request::Hello { .. } => 0,
            Request::Ping => 1,
            Request::Snapshot { .. } => 2,
            Request::Cells => 3,
            Request::Volumes => 4,
            Request::Backups { .. } => 5,
            Request::Plan { .. } => 6,
            Request::Start { .. } => 7,
            Request::Stop { .. } => 8,
            Request::Restart { .. } => 9,
            Request::Apply { .. } => 10,
            Request::BackupCreate { .. } => 11,
            Request::BackupRestore { .. } => 12,
            Request::LogTail { .. } => 13,
            Request::Bye => 14,
        }
    }

    fn every_response() -> Vec<Response> {
        let backup = BackupRow {
            name: "data".into(),
            timestamp: "20260101000000".into(),
            size: 1234,
            archive: "/b/data_20260101000000.tar.gz".into(),
        };
        let volume = VolumeRow {
            name: "data".into(),
            manifest: true,
            runtime: true,
            mode: "0750".into(),
            path: "/v/data".into(),
            mounted: true,
            refs: 1,
            used_by: "web".into(),
            state: "managed".into(),
        };
        vec![
            Response::Hello {
                version: PROTOCOL_VERSION,
                server: "cellmgr".into(),
                host: "h".into(),
            },
            Response::Pong,
            Response::Snapshot {
                token: 1,
                data: Some(Snapshot {
                    cells: vec![sample_cell("web", true)],
                    volumes: vec![volume.clone()],
                }),
            },
            Response::Cells(vec![sample_cell("web", true), sample_cell("db", false)]),
            Response::Volumes(vec![volume]),
            Response::Backups(vec![backup.clone()]),
            Response::Plan(Plan {
                steps: vec![PlanStep {
                    subject: "cell web".into(),
                    action: "START".into(),
                    detail: "autostart=YES".into(),
                }],
                drift: true,
                token: format!("sha256:{}", "a5".repeat(32)),
            }),
            Response::Done {
                message: "web: started".into(),
            },
            Response::BackupCreated(backup),
            Response::Log(LogChunk {
                lines: vec!["a".into(), "ü".into()],
                offset: 10,
            }),
            Response::Bye,
            Response::Error(RemoteError::new(ErrorKind::Failed, "cell 'x' not found")),
        ]
    }

    fn response_index(r: &Response) -> usize {
        match r {
            Response::Hello { .. } => 0,
            Response::Pong => 1,
            Response::Snapshot { .. } => 2,
            Response::Cells(_) => 3,
            Response::Volumes(_) => 4,
            Response::Backups(_) => 5,
            Response::Plan(_) => 6,
            Response::Done { .. } => 7,
            Response::BackupCreated(_) => 8,
            Response::Log(_) => 9,
            Response::Bye => 10,
            Response::Error(_) => 11,
        }
    }

    #[test]
    fn every_request_round_trips() {
        let all = every_request();
        let covered: BTreeSet<usize> = all.iter().map(request_index).collect();
        assert_eq!(
            covered,
            (0..=14).collect(),
            "a request variant has no sample"
        );
        for (id, req) in all.into_iter().enumerate() {
            let env = Envelope {
                id: id as u64,
                body: req,
            };
            let back: Envelope<Request> = decode(&encode(&env)).unwrap();
            assert_eq!(back, env);
        }
    }

    #[test]
    fn every_response_round_trips() {
        let all = every_response();
        let covered: BTreeSet<usize> = all.iter().map(response_index).collect();
        assert_eq!(
            covered,
            (0..=11).collect(),
            "a response variant has no sample"
        );
        for resp in all {
            let env = Envelope { id: 3, body: resp };
            let back: Envelope<Response> = decode(&encode(&env)).unwrap();
            assert_eq!(back, env);
        }
    }

    #[test]
    fn garbage_does_not_decode_and_says_why() {
        assert!(decode::<Envelope<Request>>(b"\xff\x00garbage").is_err());
        let not_a_request = encode(&Envelope { id: 1, body: 17u32 });
        assert!(decode::<Envelope<Request>>(&not_a_request).is_err());
    }

    #[test]
    fn engine_errors_keep_the_cli_wording() {
        let err = anyhow::anyhow!("no manifest web.cell").context("starting cell web");
        let remote = RemoteError::from_engine(&err);
        assert_eq!(remote.kind, ErrorKind::Failed);
        assert_eq!(remote.message, "starting cell web: no manifest web.cell");
    }

    #[test]
    fn digests_are_stable_and_content_sensitive() {
        let a = digest(&sample_cell("web", true));
        assert_eq!(a, digest(&sample_cell("web", true)));
        assert_ne!(a, digest(&sample_cell("web", false)));
    }
}
