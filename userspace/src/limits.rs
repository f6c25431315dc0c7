//! Process limits a boot storm needs: an open file for every connection and
//! for every file being sent.
//!
//! systemd starts a service with a soft limit of 1,024 open files (the most
//! select(2) can watch) under a hard limit of 524,288, and expects programs
//! that need more, and do not use select(2), to raise the soft limit
//! themselves. A thousand machines each downloading a kernel hold two
//! descriptors apiece; at the soft limit accept(2) fails and the rest wait.
//! Hook commands get the limit the daemon was started with back, as a
//! program written for it expects.

use std::io;
use std::sync::OnceLock;

/// The soft limit the daemon was started with, once it was raised.
static STARTED_WITH: OnceLock<libc::rlim_t> = OnceLock::new();

/// Open-file limits: what the daemon was started with, what it runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
}

fn get() -> io::Result<libc::rlimit> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `l` is a live rlimit the call writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(l)
}

fn set(l: &libc::rlimit) -> io::Result<()> {
    // SAFETY: `l` is a live rlimit the call reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one.
pub fn raise_open_files() -> io::Result<OpenFiles> {
    let mut l = get()?;
    let before = l.rlim_cur;
    if l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max;
        set(&l)?;
        let _ = STARTED_WITH.set(before);
    }
    Ok(OpenFiles {
        before,
        now: l.rlim_cur,
    })
}

/// For a child about to run another program: the soft limit the daemon was
/// started with. Only async-signal-safe calls, as `pre_exec` requires.
pub fn restore_for_child() -> io::Result<()> {
    if let Some(&soft) = STARTED_WITH.get() {
        let mut l = get()?;
        l.rlim_cur = soft.min(l.rlim_max);
        set(&l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child, so the test process keeps its limits: lowered to 64
    /// under a hard 4,096, the limit goes back up, and a program the child
    /// runs afterwards is given 64 again.
    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_and_back_down_for_children() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "ulimit -Sn; ulimit -Hn"]);
        // SAFETY: between fork and exec only getrlimit/setrlimit run, and
        // the OnceLock is set before any other thread of the child exists.
        let out = unsafe {
            use std::os::unix::process::CommandExt as _;
            cmd.pre_exec(|| {
                set(&libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 4096,
                })?;
                let got = raise_open_files()?;
                if got
                    != (OpenFiles {
                        before: 64,
                        now: 4096,
                    })
                    || get()?.rlim_cur != 4096
                {
                    return Err(io::Error::other("not raised"));
                }
                restore_for_child()
            })
            .output()
        }
        .expect("running sh");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "64\n4096\n");
    }
}
