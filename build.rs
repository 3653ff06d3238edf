//! Build script: gives the shared library its SONAME (`libhyperfabric.so.<major>`) and its
//! export list (only `hf_*` symbols), and generates the C header from `src/ffi` with
//! cbindgen into `$OUT_DIR/hyperfabric.h`; with `HF_UPDATE_HEADER=1` also into the committed
//! `include/hyperfabric.h` (a test fails while the two differ).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=hyperfabric.map");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-env-changed=HF_UPDATE_HEADER");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhyperfabric.so.{major}");
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            dir.join("hyperfabric.map").display()
        );
        soname_link(&major);
    }
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // cbindgen follows the `mod` items of src/ffi/mod.rs to the other files.
    let header = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("the C header generates");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    header.write_to_file(out.join("hyperfabric.h"));
    if std::env::var("HF_UPDATE_HEADER").is_ok_and(|v| v == "1") {
        header.write_to_file(dir.join("include/hyperfabric.h"));
    }
}

/// A program linked with `-L target/<profile> -lhyperfabric` records the SONAME
/// (`libhyperfabric.so.<major>`), which cargo does not create: link it to the library beside
/// it, so such a program starts without `make install`. `$OUT_DIR` is
/// `target/<profile>/build/<crate>-<hash>/out`; the link may dangle until the library is
/// linked. Failures are ignored: the link is a convenience, not part of the build.
fn soname_link(major: &str) {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(format!("libhyperfabric.so.{major}"));
    if std::fs::read_link(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libhyperfabric.so", &link);
    }
}
