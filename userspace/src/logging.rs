//! The binaries' one log set-up: tracing to stderr, filtered by `--log`.

/// Logs to stderr at `filter` (an env-filter directive; "info" when it does
/// not parse). aya-log writes to the `log` facade, which init() bridges into
/// tracing. Colour only on a terminal: the journal and log files get plain
/// text.
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
