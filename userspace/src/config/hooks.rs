//! The `[hooks]` section: the command and webhook run for lease events,
//! their timeout and the size of their queue.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;

use super::location::Source;
use super::validate::duration_value;
use super::{wire, ConfigError, Hooks, Mode, Webhook};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_QUEUE: usize = 1024;
/// A queue this long already holds minutes of events of a busy site; more
/// only hides a hook that never keeps up.
pub const MAX_QUEUE: i64 = 1_000_000;
/// Longer runs would hold the one queue up for everything behind them.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

pub fn hooks(
    w: Option<&Spanned<wire::Hooks>>,
    mode: Mode,
    src: &Source,
) -> Result<Option<Hooks>, ConfigError> {
    let Some(section) = w else {
        return Ok(None);
    };
    let h = section.get_ref();
    // The table's span starts after its header; name the header's line.
    let body = section.span();
    let header = src.text[..body.start.min(src.text.len())]
        .rfind("[hooks]")
        .unwrap_or(body.start);
    let whole = header..body.end;
    if mode != Mode::Authoritative {
        return Err(src.invalid(
            &whole,
            "hooks",
            "this server.mode hands out no leases, so no hook would ever run: remove [hooks]",
        ));
    }
    if h.command.is_none() && h.webhook.is_none() {
        return Err(src.invalid(
            &whole,
            "hooks",
            "names neither `command` nor `webhook`: set one or both, or remove [hooks]",
        ));
    }
    let command = h
        .command
        .as_ref()
        .map(|c| command(c, src.path))
        .transpose()
        .map_err(|(span, m)| src.invalid(&span, "hooks.command", m))?;
    let mut webhook = h
        .webhook
        .as_ref()
        .map(|u| webhook(u.get_ref()).map_err(|m| src.invalid(&u.span(), "hooks.webhook", m)))
        .transpose()?;
    if let Some(ca) = &h.webhook_ca {
        let Some(hook) = webhook.as_mut() else {
            return Err(src.invalid(
                &ca.span(),
                "hooks.webhook_ca",
                "is set but there is no `webhook`",
            ));
        };
        let p = Path::new(ca.get_ref());
        let path = match src.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        };
        // Read now, so that a wrong file stops the daemon at start and not
        // at every lease.
        crate::httpclient::certificates(&path)
            .map_err(|e| src.invalid(&ca.span(), "hooks.webhook_ca", format!("{e:#}")))?;
        hook.ca = Some(path);
    }
    let timeout = match &h.timeout {
        None => DEFAULT_TIMEOUT,
        Some(d) => {
            let t = duration_value(d, "hooks.timeout", src)?;
            if t > MAX_TIMEOUT {
                return Err(src.invalid(
                    &d.span(),
                    "hooks.timeout",
                    format!(
                        "{} is longer than the longest allowed, {}",
                        super::duration::format(t),
                        super::duration::format(MAX_TIMEOUT)
                    ),
                ));
            }
            t
        }
    };
    let queue = match &h.queue {
        None => DEFAULT_QUEUE,
        Some(n) => match *n.get_ref() {
            q @ 1..=MAX_QUEUE => q as usize,
            q => {
                return Err(src.invalid(
                    &n.span(),
                    "hooks.queue",
                    format!("{q} is not between 1 and {MAX_QUEUE}"),
                ))
            }
        },
    };
    Ok(Some(Hooks {
        command,
        webhook,
        timeout,
        queue,
    }))
}

/// The command's path, relative ones taken from the config file's
/// directory; it must be an executable file now, so that a typo stops the
/// daemon at start and not at every lease.
fn command(
    c: &Spanned<String>,
    config: &Path,
) -> Result<PathBuf, (std::ops::Range<usize>, String)> {
    let text = c.get_ref();
    let bad = |m: String| Err((c.span(), m));
    if text.trim().is_empty() {
        return bad("is empty".into());
    }
    let p = Path::new(text);
    let path = match config.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    };
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Err(e) => bad(format!("{}: {e}", path.display())),
        Ok(m) if !m.is_file() => bad(format!("{} is not a file", path.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            bad(format!("{} is not executable", path.display()))
        }
        Ok(_) => Ok(path),
    }
}

/// Checks and splits an `http://` or `https://host[:port][/path]` URL.
pub fn webhook(url: &str) -> Result<Webhook, String> {
    let (tls, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        Some((scheme, _)) => {
            return Err(format!(
                "{url:?}: scheme {scheme:?} is not supported, only http:// and https://"
            ))
        }
        None => {
            return Err(format!(
                "{url:?} is not a URL (expected http[s]://host[:port]/path)"
            ))
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    if authority.contains('@') {
        return Err(format!(
            "{url:?}: user names and passwords are not supported"
        ));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!(
            "{url:?}: the path has spaces or control characters"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside brackets.
        Some((h, p)) if !p.contains(']') => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port (1-65535)"))?;
            (h, port)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
    {
        return Err(format!("{url:?}: {host:?} is not a host name or address"));
    }
    Ok(Webhook {
        url: url.to_string(),
        tls,
        ca: None,
        host: host.to_string(),
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::webhook;
    use crate::config::Config;

    const BASE: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
                        [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n";

    fn parse(hooks: &str) -> Result<Config, String> {
        Config::from_str(
            &format!("{BASE}{hooks}"),
            Path::new("/etc/stormboot/s.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn assert_err(hooks: &str, line: usize, key: &str, needle: &str) {
        let e = parse(hooks).expect_err("accepted");
        let prefix = format!("/etc/stormboot/s.toml:{line}: {key}: ");
        assert!(e.starts_with(&prefix), "want {prefix:?}, got {e:?}");
        assert!(e.contains(needle), "want {needle:?} in {e:?}");
    }

    #[test]
    fn hooks_section_parses_with_defaults() {
        let c = parse("[hooks]\ncommand = \"/bin/sh\"\n").unwrap();
        let h = c.hooks.unwrap();
        assert_eq!(h.command.as_deref(), Some(Path::new("/bin/sh")));
        assert_eq!(h.webhook, None);
        assert_eq!((h.timeout, h.queue), (Duration::from_secs(5), 1024));
        let c = parse(
            "[hooks]\nwebhook = \"http://127.0.0.1:9000/lease\"\ntimeout = \"2s\"\nqueue = 8\n",
        )
        .unwrap();
        let h = c.hooks.unwrap();
        assert_eq!(h.webhook.unwrap().port, 9000);
        assert_eq!((h.timeout, h.queue), (Duration::from_secs(2), 8));
        assert_eq!(parse("").unwrap().hooks, None);
    }

    #[test]
    fn hooks_errors_name_key_and_line() {
        assert_err("[hooks]\ntimeout = \"5s\"\n", 8, "hooks", "neither");
        assert_err(
            "[hooks]\ncommand = \"/bin/sh\"\nqueue = 0\n",
            10,
            "hooks.queue",
            "0 is not between",
        );
        assert_err(
            "[hooks]\ncommand = \"/bin/sh\"\ntimeout = \"0s\"\n",
            10,
            "hooks.timeout",
            "positive",
        );
        assert_err(
            "[hooks]\ncommand = \"/bin/sh\"\ntimeout = \"2h\"\n",
            10,
            "hooks.timeout",
            "longer",
        );
        assert_err(
            "[hooks]\ncommand = \"on-lease\"\n",
            9,
            "hooks.command",
            "/etc/stormboot/on-lease",
        );
        let plain = tempfile::NamedTempFile::new().unwrap();
        let text = format!("[hooks]\ncommand = {:?}\n", plain.path());
        assert_err(&text, 9, "hooks.command", "not executable");
        assert_err(
            "[hooks]\ncommand = \"/tmp\"\n",
            9,
            "hooks.command",
            "not a file",
        );
        assert_err(
            "[hooks]\nwebhook = \"ftp://h/\"\n",
            9,
            "hooks.webhook",
            "only http:// and https://",
        );
        assert_err(
            "[hooks]\ncommand = \"/bin/sh\"\nwebhook_ca = \"/etc/ssl/ca.pem\"\n",
            10,
            "hooks.webhook_ca",
            "no `webhook`",
        );
        assert_err(
            "[hooks]\nwebhook = \"https://h/\"\nwebhook_ca = \"ca.pem\"\n",
            10,
            "hooks.webhook_ca",
            "/etc/stormboot/ca.pem",
        );
        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "hello\n").unwrap();
        let text = format!(
            "[hooks]\nwebhook = \"https://h/\"\nwebhook_ca = {:?}\n",
            not_pem.path()
        );
        assert_err(&text, 10, "hooks.webhook_ca", "PEM");
        let proxy = format!(
            "{}[hooks]\ncommand = \"/bin/sh\"\n",
            BASE.replace("address", "mode = \"proxy\"\naddress")
        );
        let e = Config::from_str(&proxy, Path::new("/etc/stormboot/s.toml")).unwrap_err();
        assert!(e.to_string().contains(":9: hooks: this server.mode"), "{e}");
        let e = parse("[hooks]\ncommand = \"/bin/sh\"\nscript = \"x\"\n").unwrap_err();
        assert!(e.contains(":10:") && e.contains("script"), "{e}");
    }

    #[test]
    fn webhook_urls_split_into_host_port_and_path() {
        let w = webhook("http://127.0.0.1:9000/lease?site=a").unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("127.0.0.1", 9000, "/lease?site=a")
        );
        let w = webhook("http://hooks.example").unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("hooks.example", 80, "/")
        );
        let w = webhook("HTTP://[::1]:81/x#frag").unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("[::1]", 81, "/x")
        );
        let w = webhook("http://h?q=1").unwrap();
        assert_eq!(w.path, "/?q=1");
        assert!(!w.tls);
        let w = webhook("https://hooks.example/lease").unwrap();
        assert_eq!((w.tls, w.port, w.path.as_str()), (true, 443, "/lease"));
    }

    #[test]
    fn webhook_urls_that_cannot_be_posted_to_are_refused() {
        for (url, needle) in [
            ("ftp://h/x", "only http:// and https://"),
            ("127.0.0.1:9000/lease", "not a URL"),
            ("http://:80/", "not a host"),
            ("http://h:0/", "not a port"),
            ("http://h:99999/", "not a port"),
            ("http://u:p@h/", "passwords"),
            ("http://h/a b", "spaces"),
            ("http://h_x/", "not a host"),
        ] {
            let e = webhook(url).unwrap_err();
            assert!(e.contains(needle), "{url}: {e}");
        }
    }
}
