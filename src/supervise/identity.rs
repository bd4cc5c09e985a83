//! Who a service runs as (`CELL_SUPERVISE_USER`, `CELL_SUPERVISE_GROUP`):
//! names and ids resolved in the cell's own `/etc/passwd` and `/etc/group`,
//! read from the host without trusting the cell's tree.
//!
//! The cell controls those files, so they are read the way host code reads
//! anything a cell controls: every path resolved inside the cell's root
//! ([`read_in_cell`]), only regular files, and at most [`MAX_DB`] bytes.

use crate::fs::tree::{Kind, Links, Tree};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The most of `/etc/passwd` or `/etc/group` that is read.
pub const MAX_DB: u64 = 1 << 20;

/// The credentials a service starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// From the passwd entry, when there is one: `HOME`, `USER`, `LOGNAME`.
    pub home: Option<String>,
    pub name: Option<String>,
}

/// One `name:password:id:...` entry of a passwd or group file.
struct Entry<'a> {
    fields: Vec<&'a str>,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 3 && fields[2].parse::<u32>().is_ok()).then_some(Entry { fields })
    }

    fn name(&self) -> &'a str {
        self.fields[0]
    }

    fn id(&self) -> u32 {
        self.fields[2].parse().expect("checked by parse")
    }

    fn field(&self, i: usize) -> &'a str {
        self.fields.get(i).copied().unwrap_or("")
    }
}

fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(Entry::parse)
}

/// Resolves `user` (a name or a uid) and `group` (a name or a gid; default:
/// the user's primary group) against the cell's databases, given as text.
/// A user from the passwd file also gets the groups that list it as a member.
pub fn resolve(passwd: &str, group_db: &str, user: &str, group: Option<&str>) -> Result<Identity> {
    let by_name = entries(passwd).find(|e| e.name() == user);
    let entry = match (&by_name, user.parse::<u32>()) {
        (Some(_), _) => by_name,
        (None, Ok(uid)) => entries(passwd).find(|e| e.id() == uid),
        (None, Err(_)) => bail!("user '{user}' is not in the cell's /etc/passwd"),
    };
    let uid = entry
        .as_ref()
        .map_or_else(|| user.parse().expect("a number"), Entry::id);
    let primary = match &entry {
        Some(e) => Some(e.field(3).parse::<u32>().with_context(|| {
            format!("the cell's /etc/passwd entry of '{user}' has no group id")
        })?),
        None => None,
    };
    let gid = match group {
        Some(g) => match entries(group_db).find(|e| e.name() == g) {
            Some(e) => e.id(),
            None => g
                .parse()
                .map_err(|_| anyhow::anyhow!("group '{g}' is not in the cell's /etc/group"))?,
        },
        None => primary.with_context(|| {
            format!("uid {user} is not in the cell's /etc/passwd: set CELL_SUPERVISE_GROUP too")
        })?,
    };
    let name = entry.as_ref().map(|e| e.name().to_string());
    let mut groups = vec![gid];
    if let Some(n) = &name {
        for e in entries(group_db) {
            if e.field(3).split(',').any(|m| m == n) && !groups.contains(&e.id()) {
                groups.push(e.id());
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home: entry
            .as_ref()
            .map(|e| e.field(5).to_string())
            .filter(|h| h.starts_with('/')),
        name,
    })
}

/// Reads the cell's databases and resolves `user` and `group` in them.
pub fn resolve_in_cell(root: &Path, user: &str, group: Option<&str>) -> Result<Identity> {
    let read = |path: &str| -> Result<String> {
        let bytes = read_in_cell(root, path, MAX_DB)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    resolve(&read("/etc/passwd")?, &read("/etc/group")?, user, group)
}

/// Reads a regular file of a cell, `path` taken as the cell sees it, without
/// leaving the cell's root whatever its links say (the safe file layer,
/// [`crate::fs::tree`]); at most `max` bytes. `None` when the file does not
/// exist; a device node or fifo is never opened.
pub fn read_in_cell(root: &Path, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
    let tree = Tree::open(root, Links::InRoot)?;
    let rel = Path::new(path);
    let meta = match tree.meta_of_target(rel) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.context(format!("opening {path} in the cell"))),
    };
    if meta.kind != Kind::File {
        bail!("{path} in the cell is not a regular file");
    }
    if meta.size > max {
        bail!("{path} in the cell is larger than {max} bytes");
    }
    tree.read(rel, max)
        .with_context(|| format!("reading {path} in the cell"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # a comment\n\
                          www:x:33:33:web:/var/www:/bin/false\n\
                          app:*:1000:1000::/home/app:/bin/sh\n\
                          broken line\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\napp:x:1000:\nlogs:x:4:app,www\nstaff:x:50:app\n";

    #[test]
    fn names_and_ids_resolve_with_groups_and_home() {
        let app = resolve(PASSWD, GROUP, "app", None).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone()),
            (1000, 1000, vec![1000, 4, 50])
        );
        assert_eq!(app.home.as_deref(), Some("/home/app"));
        assert_eq!(app.name.as_deref(), Some("app"));
        // By uid: the same entry.
        assert_eq!(resolve(PASSWD, GROUP, "1000", None).unwrap(), app);
        let www = resolve(PASSWD, GROUP, "www", Some("staff")).unwrap();
        assert_eq!((www.uid, www.gid, www.groups), (33, 50, vec![50, 4]));
        // An id the cell does not know needs a group.
        let anon = resolve(PASSWD, GROUP, "4242", Some("4243")).unwrap();
        assert_eq!((anon.uid, anon.gid, anon.groups), (4242, 4243, vec![4243]));
        assert_eq!(anon.home, None);
    }

    #[test]
    fn unknown_names_say_where_they_were_looked_up() {
        let e = resolve(PASSWD, GROUP, "nobody", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user 'nobody' is not in the cell's /etc/passwd"
        );
        let e = resolve(PASSWD, GROUP, "app", Some("wheel")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "group 'wheel' is not in the cell's /etc/group"
        );
        let e = resolve(PASSWD, GROUP, "4242", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "uid 4242 is not in the cell's /etc/passwd: set CELL_SUPERVISE_GROUP too"
        );
    }

    #[test]
    fn cell_files_are_read_inside_the_root_only() {
        let dir = TempDir::new("identity");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(dir.join("host-secret"), "root:x:0:0::/:/bin/sh\n").unwrap();
        // Links that point out of the cell resolve inside it instead: never
        // the host's file.
        std::os::unix::fs::symlink("../../host-secret", root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(dir.join("host-secret"), root.join("etc/group")).unwrap();
        for f in ["/etc/passwd", "/etc/group"] {
            let got = read_in_cell(&root, f, MAX_DB);
            assert!(
                !matches!(&got, Ok(Some(b)) if b.starts_with(b"root")),
                "{f}: {got:?}"
            );
        }
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/passwd"), "x".repeat(100)).unwrap();
        let e = read_in_cell(&root, "/etc/passwd", 10).unwrap_err();
        assert!(e.to_string().contains("larger than 10 bytes"), "{e}");
        // A FIFO neither blocks nor reads.
        let fifo = std::ffi::CString::new(root.join("etc/fifo").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = format!(
            "{:#}",
            read_in_cell(&root, "/etc/fifo", MAX_DB).unwrap_err()
        );
        assert!(
            e.contains("/etc/fifo in the cell is not a regular file"),
            "{e}"
        );
        assert_eq!(read_in_cell(&root, "/etc/none", MAX_DB).unwrap(), None);
    }
}
