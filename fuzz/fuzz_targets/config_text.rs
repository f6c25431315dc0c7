//! TOML text through the config parser and validator: a config or an
//! error that names its line or key, never a panic. See
//! `stormboot_testbed::lab::fuzz::config_text`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        stormboot_testbed::lab::fuzz::config_text(text);
    }
});
