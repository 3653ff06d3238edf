//! Configuration text (`load_fabric_config` reads files through `FabricConfig::parse`):
//! errors are configuration errors on one line, and a configuration that loads saves to
//! text that loads back equal and builds its topology.
#![no_main]

use hyperfabric::config::FabricConfig;
use hyperfabric::ErrorKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match FabricConfig::parse(text, "fuzz.yaml") {
        Ok(cfg) => {
            let yaml = cfg.to_yaml();
            let again = FabricConfig::parse(&yaml, "saved.yaml")
                .unwrap_or_else(|e| panic!("saved text does not load: {e}\n{yaml}"));
            assert_eq!(again, cfg, "saved text loads back different:\n{yaml}");
            // The loader has checked everything the topology checks.
            cfg.topology()
                .expect("a loaded configuration builds its topology");
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(!e.to_string().contains('\n'), "errors are one line: {e}");
        }
    }
});
