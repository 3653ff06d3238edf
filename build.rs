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
    #[cfg(feature = "pmix")]
    pmix_bindings(&out);
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

/// Bindings to the PMIx client calls the bootstrap uses, from the headers pkg-config names
/// (`pmix` feature), and the link to libpmix with its run path.
#[cfg(feature = "pmix")]
fn pmix_bindings(out: &std::path::Path) {
    let probe = |arg: &str| -> Vec<String> {
        let o = std::process::Command::new("pkg-config")
            .args([arg, "pmix"])
            .output()
            .expect("pkg-config runs (the pmix feature needs pkg-config and libpmix-dev)");
        assert!(
            o.status.success(),
            "pkg-config does not know pmix: install libpmix-dev (the pmix feature needs it)"
        );
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let cflags = probe("--cflags");
    for flag in probe("--libs") {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    println!("cargo:rustc-link-lib=pmix");
    bindgen::Builder::default()
        .header_contents("wrap.h", "#include <pmix.h>\n")
        .clang_args(cflags)
        .allowlist_function(
            "PMIx_(Init|Finalize|Put|Commit|Fence|Get|Error_string|Value_load|Value_destruct)",
        )
        .allowlist_type("pmix_(proc|value|info|byte_object)_t")
        .allowlist_var("PMIX_(SUCCESS|BYTE_OBJECT|UINT32|GLOBAL)")
        .generate()
        .expect("bindings to pmix.h generate")
        .write_to_file(out.join("pmix.rs"))
        .expect("the bindings are written");
}
