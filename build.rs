//! Build script: gives the shared library its SONAME (`libhyperfabric.so.<major>`), so
//! programs linked against it keep working across compatible upgrades.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhyperfabric.so.{major}");
    }
}
