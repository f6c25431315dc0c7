//! Builds the XDP program (bpf/xdp) for bpfel-unknown-none and leaves the
//! object in OUT_DIR, so the stormboot binary embeds it and ships as one file.
//!
//! Toolchain: Debian's rustc-web/cargo-web with rust-web-src (the pair whose
//! core source matches the compiler), else a rustup nightly with rust-src.
//! `cargo xtask setup` installs the first. STORMBOOT_EBPF_OBJ names a
//! prebuilt object instead.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("stormboot-ebpf");
    for p in [
        "bpf/xdp/src",
        "bpf/xdp/Cargo.toml",
        "bpf/xdp/Cargo.lock",
        "bpf/xdp/.cargo/config.toml",
        "bpf/common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=STORMBOOT_EBPF_OBJ");

    if let Ok(prebuilt) = env::var("STORMBOOT_EBPF_OBJ") {
        std::fs::copy(&prebuilt, &out)
            .unwrap_or_else(|e| panic!("STORMBOOT_EBPF_OBJ={prebuilt}: {e}"));
        return;
    }

    let crate_dir = root.join("bpf/xdp");
    let target_dir = root.join("target/ebpf");
    let mut cmd = toolchain_command();
    cmd.current_dir(&crate_dir)
        .args([
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer cargo's settings describe the host build, not this one.
    for (key, _) in env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    if let Some(rustc) = debian_rustc() {
        cmd.env("RUSTC_BOOTSTRAP", "1").env("RUSTC", rustc);
    }
    // bpf-linker is installed by `cargo install`, which puts it here.
    let home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cargo")
        });
    let path = env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", home.join("bin").display()));

    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run the eBPF toolchain ({cmd:?}): {e}; run `cargo xtask setup`")
    });
    if !status.success() {
        panic!("building bpf/xdp failed ({status}); `cargo xtask setup` installs the toolchain");
    }
    let built = target_dir.join("bpfel-unknown-none/release/stormboot-ebpf");
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
}

/// Debian's rustc 1.96 when its matching core source is installed.
fn debian_rustc() -> Option<&'static str> {
    let ok = Path::new("/usr/bin/rustc").exists()
        && Path::new("/usr/bin/cargo").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").exists();
    ok.then_some("/usr/bin/rustc")
}

fn toolchain_command() -> Command {
    if debian_rustc().is_some() {
        Command::new("/usr/bin/cargo")
    } else {
        // rustup's proxy selects the nightly toolchain from the argument.
        let mut c = Command::new("cargo");
        c.arg("+nightly");
        c
    }
}
