//! The directive executors. Each one compares what is there with what the plan
//! says and changes only the difference, reporting `changed` or `unchanged`
//! (`EXEC` always runs and says so).

use super::patch::{self, PatchResult};
use super::rootfs;
use super::{ApplyFile, Attrs, CellRunner, Directive, Step};
use crate::fs::tree::Tree;
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::time::Duration;

/// What a plan runs against.
pub struct Context<'a> {
    pub cell: &'a str,
    /// The cell's composed root (mounted), links resolved as the cell sees them.
    pub root: &'a Tree,
    pub runner: &'a dyn CellRunner,
    /// `cellmgr.conf` `CELL_PKG_TOOL`, e.g. `pkg_add`; empty means none.
    pub pkg_tool: &'a str,
    /// Exported into `EXEC` and `PKG` (e.g. `PKG_PATH`).
    pub env: Vec<(String, String)>,
    pub exec_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Changed(String),
    Unchanged,
    /// `EXEC`: ran; whether it changed anything is the command's business.
    Ran,
}

/// One executed step, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub line: usize,
    pub keyword: &'static str,
    /// The path, packages or command the step acts on.
    pub subject: String,
    pub outcome: Outcome,
    /// Output of in-cell commands (for `-v`).
    pub output: String,
}

impl std::fmt::Display for StepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.outcome {
            Outcome::Changed(how) => format!("changed ({how})"),
            Outcome::Unchanged => "NOOP".into(),
            Outcome::Ran => "ran".into(),
        };
        write!(
            f,
            "line {} {} {}: {what}",
            self.line, self.keyword, self.subject
        )
    }
}

/// Runs every step in order; the first failure stops the plan with an error
/// naming file, line and directive. `on_step` sees each report as it happens.
pub fn run_plan(
    ctx: &Context,
    file: &ApplyFile,
    on_step: &mut dyn FnMut(&StepReport),
) -> Result<Vec<StepReport>> {
    let mut reports = Vec::new();
    for step in &file.steps {
        let report = run_step(ctx, file, step).with_context(|| {
            format!(
                "{}:{}: {}",
                file.path.display(),
                step.line,
                step.directive.keyword()
            )
        })?;
        on_step(&report);
        reports.push(report);
    }
    Ok(reports)
}

fn run_step(ctx: &Context, file: &ApplyFile, step: &Step) -> Result<StepReport> {
    let root = ctx.root;
    let mut output = String::new();
    let (subject, outcome) = match &step.directive {
        Directive::Dir { path, attrs } => {
            let created = rootfs::ensure_dir(root, path)?;
            let attrs = rootfs::ensure_attrs(root, path, attrs)?;
            (path.clone(), outcome(created.then_some("created"), attrs))
        }
        Directive::Line { path, text } => {
            let old = rootfs::read_file(root, path)?.unwrap_or_default();
            let present = String::from_utf8_lossy(&old).lines().any(|l| l == text);
            let changed = if present {
                None
            } else {
                let mut new = old;
                if !new.is_empty() && !new.ends_with(b"\n") {
                    new.push(b'\n');
                }
                new.extend_from_slice(text.as_bytes());
                new.push(b'\n');
                rootfs::ensure_content(root, path, &new)?;
                Some("line added")
            };
            (path.clone(), outcome(changed, Vec::new()))
        }
        Directive::Symlink { target, link } => {
            rootfs::ensure_parent(root, link)?;
            let changed = root
                .symlink(Path::new(link), Path::new(target))?
                .then_some("linked");
            (format!("{link} -> {target}"), outcome(changed, Vec::new()))
        }
        Directive::File {
            path,
            attrs,
            content,
        } => ensure_file(root, path, content.as_bytes(), attrs)?,
        Directive::Copy { src, dst, attrs } => {
            let bytes = read_asset(file, src)?;
            ensure_file(root, dst, &bytes, attrs)?
        }
        Directive::Template {
            src,
            dst,
            attrs,
            tokens,
        } => {
            let bytes = read_asset(file, src)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("template {src} is not UTF-8 text"))?;
            let rendered = super::template::render(&text, tokens, &builtin_tokens(ctx, file))
                .map_err(|e| anyhow::anyhow!("template {src}: {e}"))?;
            ensure_file(root, dst, rendered.as_bytes(), attrs)?
        }
        Directive::Patch { path, diff } => {
            let old = rootfs::read_file(root, path)?
                .with_context(|| format!("{path} does not exist; PATCH needs the file"))?;
            let text =
                String::from_utf8(old).map_err(|_| anyhow::anyhow!("{path} is not UTF-8 text"))?;
            let changed = match patch::apply(&text, diff).map_err(anyhow::Error::msg)? {
                PatchResult::Applied(new) => {
                    rootfs::ensure_content(root, path, new.as_bytes())?;
                    Some("patched")
                }
                PatchResult::AlreadyApplied => None,
            };
            (path.clone(), outcome(changed, Vec::new()))
        }
        Directive::Exec(cmd) => {
            let argv = ["/bin/sh".to_string(), "-c".to_string(), cmd.clone()];
            let out = ctx.runner.run(&argv, &ctx.env, ctx.exec_timeout)?;
            if !out.success() {
                bail!("'{cmd}' failed: {}", out.describe_failure());
            }
            output = out.output;
            (cmd.clone(), Outcome::Ran)
        }
        Directive::Pkg(pkgs) => {
            let (installed, out) = ensure_packages(ctx, pkgs)?;
            output = out;
            let changed =
                (!installed.is_empty()).then(|| format!("installed {}", installed.join(" ")));
            (
                pkgs.join(" "),
                match changed {
                    Some(c) => Outcome::Changed(c),
                    None => Outcome::Unchanged,
                },
            )
        }
    };
    Ok(StepReport {
        line: step.line,
        keyword: step.directive.keyword(),
        subject,
        outcome,
        output,
    })
}

fn outcome(primary: Option<&str>, attrs: Vec<String>) -> Outcome {
    let mut parts: Vec<String> = primary.map(str::to_string).into_iter().collect();
    parts.extend(attrs);
    if parts.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Changed(parts.join(", "))
    }
}

fn ensure_file(
    root: &Tree,
    path: &str,
    content: &[u8],
    attrs: &Attrs,
) -> Result<(String, Outcome)> {
    let written = rootfs::ensure_content(root, path, content)?;
    let attrs = rootfs::ensure_attrs(root, path, attrs)?;
    Ok((
        path.to_string(),
        outcome(written.then_some("content"), attrs),
    ))
}

fn read_asset(file: &ApplyFile, asset: &str) -> Result<Vec<u8>> {
    let p = file.asset_path(asset);
    crate::fs::trust::read(&p, "host asset")?
        .with_context(|| format!("host asset {} does not exist", p.display()))
}

/// Tokens every template may use without defining them.
fn builtin_tokens(ctx: &Context, file: &ApplyFile) -> Vec<(&'static str, String)> {
    let dir = file.path.parent().unwrap_or(Path::new("."));
    vec![
        ("cell_name", ctx.cell.to_string()),
        ("manifest_dir", dir.display().to_string()),
    ]
}

/// How a package tool tells whether a package is installed (run in the cell).
fn installed_query(tool: &str, pkg: &str) -> Option<Vec<String>> {
    let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let program = tool.split_whitespace().next()?;
    let program = Path::new(program).file_name()?.to_str()?;
    match program {
        "pkg_add" => Some(words(&["pkg_info", "-qe", pkg])),
        "pkgin" => Some(words(&["pkg_info", "-qe", pkg])),
        "apt-get" | "apt" => Some(words(&["dpkg", "-s", pkg])),
        "apk" => Some(words(&["apk", "info", "-e", pkg])),
        "dnf" | "yum" => Some(words(&["rpm", "-q", pkg])),
        _ => None,
    }
}

/// Installs the packages that are missing; returns those it installed.
fn ensure_packages(ctx: &Context, pkgs: &[String]) -> Result<(Vec<String>, String)> {
    if ctx.pkg_tool.trim().is_empty() {
        bail!(
            "no package tool is configured for this base: set CELL_PKG_TOOL in cellmgr.conf \
             (pkg_add on NetBSD; e.g. 'apt-get install -y' for a Debian base tree), or \
             install the packages into the base"
        );
    }
    let mut missing = Vec::new();
    for p in pkgs {
        match installed_query(ctx.pkg_tool, p) {
            Some(q) => {
                let out = ctx.runner.run(&q, &ctx.env, ctx.exec_timeout)?;
                if !out.success() {
                    missing.push(p.clone());
                }
            }
            // A tool we do not know how to query: let it decide (installers are
            // idempotent), but then we cannot say whether anything changed.
            None => missing.push(p.clone()),
        }
    }
    if missing.is_empty() {
        return Ok((missing, String::new()));
    }
    let mut argv: Vec<String> = ctx
        .pkg_tool
        .split_whitespace()
        .map(str::to_string)
        .collect();
    argv.extend(missing.iter().cloned());
    let out = ctx.runner.run(&argv, &ctx.env, ctx.exec_timeout)?;
    if !out.success() {
        bail!("{} failed: {}", argv.join(" "), out.describe_failure());
    }
    Ok((missing, out.output))
}

#[cfg(test)]
mod tests {
    use super::super::{parse, RunOutput};
    use super::*;
    use crate::fs::tree::Links;
    use crate::testutil::TempDir;
    use std::cell::RefCell;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Records commands; answers from a table of (argv prefix, exit code).
    struct FakeRunner {
        calls: RefCell<Vec<String>>,
        answers: Vec<(&'static str, i32)>,
    }

    impl CellRunner for FakeRunner {
        fn run(
            &self,
            argv: &[String],
            _env: &[(String, String)],
            _t: Duration,
        ) -> Result<RunOutput> {
            let line = argv.join(" ");
            self.calls.borrow_mut().push(line.clone());
            let code = self
                .answers
                .iter()
                .find(|(p, _)| line.starts_with(p))
                .map_or(0, |(_, c)| *c);
            Ok(RunOutput {
                code: Some(code),
                timed_out: false,
                output: format!("out of {line}\n"),
            })
        }
    }

    fn fake(answers: Vec<(&'static str, i32)>) -> FakeRunner {
        FakeRunner {
            calls: RefCell::new(Vec::new()),
            answers,
        }
    }

    struct Fixture {
        _t: TempDir,
        root: std::path::PathBuf,
        manifests: std::path::PathBuf,
    }

    fn fixture() -> Fixture {
        let t = TempDir::new("directives");
        let root = t.join("root");
        let manifests = t.join("etc");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&manifests).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:801:802::/:/bin/false\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "wheel:x:0:\nwww:x:802:\n").unwrap();
        Fixture {
            _t: t,
            root,
            manifests,
        }
    }

    /// Runs `text` as web.apply twice: returns the outcomes of both runs.
    fn twice(
        fx: &Fixture,
        runner: &FakeRunner,
        pkg_tool: &str,
        text: &str,
    ) -> Result<(Vec<Outcome>, Vec<Outcome>)> {
        let path = fx.manifests.join("web.apply");
        fs::write(&path, text).unwrap();
        let file = parse(&path, text)?;
        let tree = Tree::open(&fx.root, Links::InRoot).unwrap();
        let ctx = Context {
            cell: "web",
            root: &tree,
            runner,
            pkg_tool,
            env: vec![("PKG_PATH".into(), "http://x".into())],
            exec_timeout: Duration::from_secs(5),
        };
        let first = run_plan(&ctx, &file, &mut |_| {})?;
        let second = run_plan(&ctx, &file, &mut |_| {})?;
        Ok((
            first.into_iter().map(|r| r.outcome).collect(),
            second.into_iter().map(|r| r.outcome).collect(),
        ))
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn changed(s: &str) -> Outcome {
        Outcome::Changed(s.into())
    }

    #[test]
    fn dir_creates_parents_sets_attrs_then_noop() {
        let fx = fixture();
        let r = fake(vec![]);
        let (a, b) = twice(
            &fx,
            &r,
            "",
            "DIR /srv/www/htdocs mode=0750 owner=www group=www\n",
        )
        .unwrap();
        assert_eq!(a, [changed("created, mode 0750, owner 801, group 802")]);
        assert_eq!(b, [Outcome::Unchanged]);
        let p = fx.root.join("srv/www/htdocs");
        assert_eq!(mode(&p), 0o750);
        assert_eq!(fs::metadata(&p).unwrap().uid(), 801);
    }

    #[test]
    fn line_appends_once_and_keeps_other_lines() {
        let fx = fixture();
        fs::write(fx.root.join("etc/hosts"), "127.0.0.1 localhost").unwrap();
        let r = fake(vec![]);
        let (a, b) = twice(
            &fx,
            &r,
            "",
            "LINE /etc/hosts | 10.0.0.1 db\nLINE /etc/new/conf | x=1\n",
        )
        .unwrap();
        assert_eq!(a, [changed("line added"), changed("line added")]);
        assert_eq!(b, [Outcome::Unchanged, Outcome::Unchanged]);
        assert_eq!(
            fs::read_to_string(fx.root.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n10.0.0.1 db\n"
        );
        assert_eq!(
            fs::read_to_string(fx.root.join("etc/new/conf")).unwrap(),
            "x=1\n"
        );
    }

    #[test]
    fn symlink_replaces_wrong_links_and_files_but_not_dirs() {
        let fx = fixture();
        std::os::unix::fs::symlink("/elsewhere", fx.root.join("data")).unwrap();
        fs::write(fx.root.join("file"), "x").unwrap();
        let r = fake(vec![]);
        let (a, b) = twice(&fx, &r, "", "SYMLINK /srv /data\nSYMLINK /srv /file\n").unwrap();
        assert_eq!(a, [changed("linked"), changed("linked")]);
        assert_eq!(b, [Outcome::Unchanged, Outcome::Unchanged]);
        assert_eq!(
            fs::read_link(fx.root.join("data")).unwrap(),
            Path::new("/srv")
        );
        let e = twice(&fx, &r, "", "SYMLINK /x /etc\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("/etc is a directory; refusing"),
            "{e:#}"
        );
    }

    #[test]
    fn file_copy_and_template_write_only_on_difference() {
        let fx = fixture();
        fs::write(fx.manifests.join("index.html"), "<h1>hi</h1>\n").unwrap();
        fs::write(
            fx.manifests.join("app.tmpl"),
            "name={{cell_name}} port={{ port }}\n",
        )
        .unwrap();
        let text = "\
FILE_BEGIN /etc/motd mode=0600
welcome
FILE_END
COPY index.html /srv/www/index.html mode=0644 owner=www
TEMPLATE app.tmpl /etc/app.conf port=8080
";
        let r = fake(vec![]);
        let (a, b) = twice(&fx, &r, "", text).unwrap();
        assert_eq!(
            a,
            [
                changed("content, mode 0600"),
                changed("content, owner 801"),
                changed("content")
            ]
        );
        assert_eq!(
            b,
            [Outcome::Unchanged, Outcome::Unchanged, Outcome::Unchanged]
        );
        assert_eq!(
            fs::read_to_string(fx.root.join("etc/motd")).unwrap(),
            "welcome\n"
        );
        assert_eq!(mode(&fx.root.join("etc/motd")), 0o600);
        assert_eq!(
            fs::read_to_string(fx.root.join("etc/app.conf")).unwrap(),
            "name=web port=8080\n"
        );
        // A drifted file is put back, keeping its mode.
        fs::write(fx.root.join("etc/app.conf"), "edited\n").unwrap();
        fs::set_permissions(
            fx.root.join("etc/app.conf"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let (a, _) = twice(&fx, &r, "", "TEMPLATE app.tmpl /etc/app.conf port=8080\n").unwrap();
        assert_eq!(a, [changed("content")]);
        assert_eq!(mode(&fx.root.join("etc/app.conf")), 0o640);
        // Unknown token fails closed, naming file and line.
        fs::write(fx.manifests.join("bad.tmpl"), "{{nope}}").unwrap();
        let e = twice(&fx, &r, "", "\nTEMPLATE bad.tmpl /etc/bad\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("web.apply:2: TEMPLATE: template bad.tmpl: unknown token 'nope'"),
            "{msg}"
        );
        assert!(!fx.root.join("etc/bad").exists());
    }

    #[test]
    fn file_directives_stay_inside_the_root() {
        let fx = fixture();
        let outside = fx.root.parent().unwrap().join("outside");
        fs::create_dir_all(&outside).unwrap();
        // Climbing links stop at the cell's root, as they do for the cell's
        // own processes: /esc is <root>/outside, never the host's.
        std::os::unix::fs::symlink("../outside", fx.root.join("esc")).unwrap();
        std::os::unix::fs::symlink(&outside, fx.root.join("abs")).unwrap();
        let r = fake(vec![]);
        for (text, error) in [
            ("FILE_BEGIN /esc/x\nx\nFILE_END\n", "which does not exist"),
            ("LINE /esc/y | x\n", "which does not exist"),
            ("DIR /esc/d\n", "which does not exist"),
            ("DIR /abs/d\n", "which does not exist"),
            (
                "FILE_BEGIN /../outside/z\nx\nFILE_END\n",
                "climbs above the cell root",
            ),
        ] {
            let e = twice(&fx, &r, "", text).unwrap_err();
            assert!(format!("{e:#}").contains(error), "{text}: {e:#}");
        }
        fs::create_dir_all(fx.root.join("outside")).unwrap();
        let inside = fx.root.join(outside.strip_prefix("/").unwrap());
        fs::create_dir_all(&inside).unwrap();
        twice(
            &fx,
            &r,
            "",
            "FILE_BEGIN /esc/x\nx\nFILE_END\nLINE /esc/y | x\nDIR /abs/d\n",
        )
        .unwrap();
        assert_eq!(fs::read(fx.root.join("outside/x")).unwrap(), b"x\n");
        assert_eq!(fs::read(fx.root.join("outside/y")).unwrap(), b"x\n");
        assert!(inside.join("d").is_dir());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn patch_applies_once() {
        let fx = fixture();
        fs::write(fx.root.join("etc/app.conf"), "a\nb\nc\n").unwrap();
        let r = fake(vec![]);
        let (a, b) = twice(
            &fx,
            &r,
            "",
            "PATCH_BEGIN /etc/app.conf\n@@ -2 +2 @@\n-b\n+B\nPATCH_END\n",
        )
        .unwrap();
        assert_eq!(a, [changed("patched")]);
        assert_eq!(b, [Outcome::Unchanged]);
        assert_eq!(
            fs::read_to_string(fx.root.join("etc/app.conf")).unwrap(),
            "a\nB\nc\n"
        );
        let e = twice(
            &fx,
            &r,
            "",
            "PATCH_BEGIN /etc/none\n@@ -1 +1 @@\n-b\n+B\nPATCH_END\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("/etc/none does not exist"));
    }

    #[test]
    fn exec_runs_every_time_and_failure_names_the_line() {
        let fx = fixture();
        let r = fake(vec![("/bin/sh -c false", 1)]);
        let (a, b) = twice(&fx, &r, "", "EXEC touch /x\n").unwrap();
        assert_eq!((a, b), (vec![Outcome::Ran], vec![Outcome::Ran]));
        assert_eq!(r.calls.borrow().len(), 2);
        let e = twice(&fx, &r, "", "DIR /a\nEXEC false\nDIR /never\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("web.apply:2: EXEC: 'false' failed: exit status 1"),
            "{msg}"
        );
        assert!(!fx.root.join("never").exists());
    }

    #[test]
    fn pkg_installs_only_missing_packages_with_the_configured_tool() {
        let fx = fixture();
        // "nginx" is installed, "redis" is not.
        let r = fake(vec![("pkg_info -qe redis", 1)]);
        let path = fx.manifests.join("p.apply");
        let file = parse(&path, "PKG nginx redis\n").unwrap();
        let tree = Tree::open(&fx.root, Links::InRoot).unwrap();
        let ctx = Context {
            cell: "web",
            root: &tree,
            runner: &r,
            pkg_tool: "pkg_add",
            env: vec![],
            exec_timeout: Duration::from_secs(5),
        };
        let out = run_plan(&ctx, &file, &mut |_| {}).unwrap();
        assert_eq!(out[0].outcome, changed("installed redis"));
        assert_eq!(
            *r.calls.borrow(),
            ["pkg_info -qe nginx", "pkg_info -qe redis", "pkg_add redis"]
        );
        let none = fake(vec![]);
        let ctx = Context {
            runner: &none,
            ..ctx
        };
        assert_eq!(
            run_plan(&ctx, &file, &mut |_| {}).unwrap()[0].outcome,
            Outcome::Unchanged
        );
        let ctx = Context {
            pkg_tool: "",
            ..ctx
        };
        let e = run_plan(&ctx, &file, &mut |_| {}).unwrap_err();
        assert!(format!("{e:#}").contains("p.apply:1: PKG: no package tool is configured"));
    }
}
