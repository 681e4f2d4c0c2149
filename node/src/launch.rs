//! A node as a child process: `halfveil start --home HOME`, its output appended to a log,
//! optionally under a wrapper (`ip netns exec NS`). It can be crashed (SIGKILL), signalled
//! (SIGSTOP, SIGCONT), stopped (SIGTERM, then a bounded wait) and watched for an exit; it
//! is killed when dropped, so no caller leaves a process behind. The demo, the bench, the
//! chaos tool and the integration tests all start their nodes with it.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One node process, started or not.
#[derive(Debug)]
pub struct NodeProcess {
    pub name: String,
    pub home: PathBuf,
    /// Its JSON-RPC address (`http://127.0.0.1:PORT`).
    pub rpc: String,
    pub log: PathBuf,
    /// The `halfveil` binary.
    program: PathBuf,
    /// A command the node runs under (`ip netns exec NS`), or empty.
    pub wrapper: Vec<String>,
    /// Environment changes: a value to set, or `None` to remove the variable.
    env: Vec<(OsString, Option<OsString>)>,
    child: Option<Child>,
}

impl NodeProcess {
    /// A node named `name` of `home`, answering at `rpc`, run by `program`, logging into
    /// `log`; not started.
    pub fn new(name: &str, home: &Path, rpc: &str, log: &Path, program: &Path) -> NodeProcess {
        NodeProcess {
            name: name.to_owned(),
            home: home.to_owned(),
            rpc: rpc.to_owned(),
            log: log.to_owned(),
            program: program.to_owned(),
            wrapper: Vec::new(),
            env: Vec::new(),
            child: None,
        }
    }

    /// Sets `key` to `value` in the node's environment.
    pub fn env(mut self, key: &str, value: &str) -> NodeProcess {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes `key` from the node's environment.
    pub fn env_remove(mut self, key: &str) -> NodeProcess {
        self.env.push((key.into(), None));
        self
    }

    /// Starts the node; its output is appended to its log.
    pub fn spawn(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            let running = format!("node {} is already running", self.name);
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, running));
        }
        let out = File::options().create(true).append(true).open(&self.log)?;
        let err = out.try_clone()?;
        let mut command = match self.wrapper.split_first() {
            Some((wrapper, args)) => {
                let mut command = Command::new(wrapper);
                command.args(args).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command.arg("start").arg("--home").arg(&self.home);
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the node without warning (SIGKILL: a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`, ...) with `kill`; false if the node is not
    /// running or `kill` failed.
    pub fn signal(&self, signal: &str) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Waits until `deadline` for the node to exit; past it, kills it. Returns its exit
    /// status, or `None` if it had to be killed or was not running.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// Asks the node to stop (SIGTERM) and waits up to `limit` ([`NodeProcess::wait_until`]).
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_until(Instant::now() + limit)
    }

    /// The node's exit status if it has exited (then it is no longer running).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        all.get(from..).unwrap_or_default().join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in program that ignores its arguments and sleeps, so the process handling
    /// is tested without a node.
    fn sleeper(dir: &Path) -> NodeProcess {
        let script = dir.join("sleeper");
        std::fs::write(&script, "#!/bin/sh\necho started \"$@\"\nexec sleep 30\n").unwrap();
        let mut permissions = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).unwrap();
        let rpc = "http://127.0.0.1:1";
        NodeProcess::new("n", &dir.join("home"), rpc, &dir.join("n.log"), &script)
    }

    #[test]
    fn a_node_process_starts_logs_stops_and_is_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = sleeper(dir.path()).env("X", "1");
        node.spawn().unwrap();
        assert!(node.spawn().is_err(), "one process per node");
        let pid = node.pid().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !node.log_tail(1).contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(node.log_tail(1).starts_with("started start --home"));
        assert!(node.exited().is_none());
        // SIGTERM ends sleep: a clean stop reports its status.
        let status = node.stop(Duration::from_secs(10)).unwrap();
        assert!(!status.success(), "killed by SIGTERM: {status}");
        assert!(!node.is_running());
        node.spawn().unwrap();
        let second = node.pid().unwrap();
        assert_ne!(pid, second);
        drop(node);
        let alive = Command::new("kill")
            .arg("-0")
            .arg(second.to_string())
            .status();
        assert!(!alive.unwrap().success(), "dropped nodes are killed");
    }
}
