//! Generates Rust bindings from the committed C header, as any Rust user of the C library
//! would; the tests compare them with the library's own definitions.

fn main() {
    let header = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/hyperfabric.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_item("hf_.*|HF_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate()
        .expect("bindgen reads include/hyperfabric.h");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("bindings written");
}
