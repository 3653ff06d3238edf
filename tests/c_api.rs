//! The C ABI from outside: the committed header equals a fresh cbindgen generation, compiles
//! as C11 and C++17 with -Wall -Wextra -Werror -pedantic, the shared library exports only
//! `hf_*` symbols under its SONAME, and `tests/c/api.c` (every protocol call and its error
//! paths) passes under AddressSanitizer and UBSan with leak checking.

mod common;

use common::FabricDir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory with the library cargo builds beside this test (`target/<profile>`); the
/// shared and static libraries are built there first if they are not yet (`cargo test`
/// alone builds the crate as an rlib only).
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
            if !dir.join("libhyperfabric.so").exists() || !dir.join("libhyperfabric.a").exists() {
                let mut cmd = Command::new(env!("CARGO"));
                cmd.current_dir(root()).args(["build", "--lib"]);
                // target/<profile>: the same profile as this test (debug is the default).
                if let Some(profile) = dir.file_name().and_then(|n| n.to_str()) {
                    if profile != "debug" {
                        cmd.args(["--profile", profile]);
                    }
                }
                run(&mut cmd);
            }
            dir
        })
        .clone()
}

/// A directory where the library is found under its SONAME too.
fn linkable() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let so = lib_dir().join("libhyperfabric.so");
    assert!(so.exists(), "{} not built", so.display());
    for name in ["libhyperfabric.so", "libhyperfabric.so.0"] {
        std::os::unix::fs::symlink(&so, dir.path().join(name)).unwrap();
    }
    dir
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/hyperfabric.h"));
    let committed = std::fs::read_to_string(root().join("include/hyperfabric.h")).unwrap();
    assert!(
        generated == committed,
        "include/hyperfabric.h is stale: run `HF_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn the_header_compiles_as_c11_and_cxx17() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("h.c");
    std::fs::write(
        &src,
        "#include \"hyperfabric.h\"\nint main(void) { return hf_version() == 0 ? 1 : 0; }\n",
    )
    .unwrap();
    let inc = root().join("include");
    for (cc, std) in [("gcc", "-std=c11"), ("g++", "-std=c++17")] {
        let mut cmd = Command::new(cc);
        cmd.args([
            std,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fsyntax-only",
        ])
        .arg("-I")
        .arg(&inc);
        if cc == "g++" {
            cmd.args(["-x", "c++"]);
        }
        run(cmd.arg(&src));
    }
}

/// Linked as the README shows, against the build tree and not an installed copy: the program
/// records the SONAME, which the build links beside the library, and starts.
#[test]
fn a_program_linked_against_the_build_tree_starts() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("v.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include \"hyperfabric.h\"\n\
         int main(void) { printf(\"%s\\n\", hf_version_string()); return 0; }\n",
    )
    .unwrap();
    let lib = lib_dir();
    let exe = dir.path().join("v");
    run(Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg(format!("-L{}", lib.display()))
        .arg("-lhyperfabric")
        .arg(format!("-Wl,-rpath,{}", lib.display())));
    let out = run(&mut Command::new(&exe));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn the_library_exports_only_hf_symbols_under_its_soname() {
    let so = lib_dir().join("libhyperfabric.so");
    let nm = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&so));
    let symbols: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    assert!(symbols.iter().any(|s| s == "hf_send_data"), "{symbols:?}");
    let foreign: Vec<&String> = symbols.iter().filter(|s| !s.starts_with("hf_")).collect();
    assert!(foreign.is_empty(), "exported besides hf_*: {foreign:?}");
    let elf = run(Command::new("readelf").arg("-d").arg(&so));
    assert!(
        String::from_utf8_lossy(&elf.stdout).contains("[libhyperfabric.so.0]"),
        "no SONAME libhyperfabric.so.0"
    );
}

/// Builds `tests/c/<name>.c` with -Werror and ASan/UBSan, runs it with `args`, and checks
/// it reports that all checks passed.
fn run_c_test(name: &str, args: &[&std::ffi::OsStr]) {
    let libs = linkable();
    let exe = libs.path().join(name);
    run(Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(libs.path())
        .arg("-lhyperfabric")
        .arg(format!("-Wl,-rpath,{}", libs.path().display())));
    let out = run(Command::new(&exe)
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn the_c_program_passes_under_sanitizers() {
    let fabric = format!("c-api-test-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    run_c_test("api", &[fabric.as_ref()]);
}

#[test]
fn endpoints_misused_from_c_are_refused_not_damaged() {
    let fabric = format!("c-hostile-ep-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    run_c_test("hostile_endpoints", &[fabric.as_ref()]);
}

#[test]
fn registered_memory_misused_from_c_is_refused_not_damaged() {
    let fabric = format!("c-registered-memory-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    run_c_test("hostile_registered", &[fabric.as_ref()]);
}

#[test]
fn null_for_every_pointer_argument_is_reported() {
    let fabric = format!("c-nulls-test-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let examples = root().join("examples");
    run_c_test("nulls", &[fabric.as_ref(), examples.as_os_str()]);
}

#[test]
fn the_control_plane_from_c_passes_under_sanitizers() {
    let fabric = format!("c-control-test-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let tmp = tempfile::tempdir().unwrap();
    let examples = root().join("examples");
    run_c_test(
        "control",
        &[
            fabric.as_ref(),
            examples.as_os_str(),
            tmp.path().as_os_str(),
        ],
    );
}

#[test]
fn an_installed_copy_builds_and_runs_the_c_examples() {
    let prefix = tempfile::tempdir().unwrap();
    run(Command::new("make")
        .current_dir(root())
        .arg("install")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg(format!("BUILD_DIR={}", lib_dir().display())));
    let pc = prefix.path().join("lib/pkgconfig");
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "hyperfabric"])
        .env("PKG_CONFIG_PATH", &pc));
    let flags = String::from_utf8_lossy(&flags.stdout);
    assert!(flags.contains("-lhyperfabric"), "{flags}");
    let build = tempfile::tempdir().unwrap();
    for f in [
        "Makefile",
        "pingpong.c",
        "bandwidth.c",
        "topology.c",
        "cluster.cpp",
    ] {
        std::fs::copy(root().join("c-examples").join(f), build.path().join(f)).unwrap();
    }
    run(Command::new("make")
        .current_dir(build.path())
        .env("PKG_CONFIG_PATH", &pc));
    let cpus = hyperfabric::sys::available_cpus();
    let cores = if cpus >= 2 { "0,1" } else { "0,0" };
    let out = run(Command::new(build.path().join("pingpong")).args([
        "--iters",
        "200",
        "--sizes",
        "8,4096,100000",
        "--cores",
        cores,
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 4, "header and three sizes: {table}");
    for (row, size) in rows[1..].iter().zip(["8", "4096", "100000"]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], size, "{table}");
        assert!(cells[1].parse::<f64>().unwrap() > 0.0, "{table}");
    }
    let out = run(Command::new(build.path().join("bandwidth")).args([
        "--iters",
        "50",
        "--sizes",
        "4096,1048576",
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
    let out = run(Command::new(build.path().join("topology"))
        .arg(root().join("examples/ai-cluster.yaml"))
        .arg("4"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gpu-01 -> switch-01 -> gpu-03") && text.contains("bottlenecks: ["),
        "{text}"
    );
    let out = run(&mut Command::new(build.path().join("cluster")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("checksum ok") && text.contains("loss 0%"),
        "{text}"
    );
}

#[test]
fn mpi_ranks_exchange_addresses_and_ping_pong_through_hyperfabric() {
    mpi_pingpong(false);
}

/// The same with TCP forced (`HF_TRANSPORT=tcp`): the ranks connect over TCP through the
/// address blobs and ping-pong with `hf_post` / `hf_recv_into`, beside MPI on its TCP path.
#[test]
fn mpi_ranks_ping_pong_over_tcp() {
    mpi_pingpong(true);
}

fn mpi_pingpong(tcp: bool) {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        have("mpicc") && have("mpirun"),
        "mpicc/mpirun not found: install openmpi-bin and libopenmpi-dev (.ci/run does)"
    );
    let prefix = tempfile::tempdir().unwrap();
    run(Command::new("make")
        .current_dir(root())
        .arg("install")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg(format!("BUILD_DIR={}", lib_dir().display())));
    let build = tempfile::tempdir().unwrap();
    for f in ["Makefile", "mpi_pingpong.c"] {
        std::fs::copy(root().join("c-examples").join(f), build.path().join(f)).unwrap();
    }
    run(Command::new("make")
        .current_dir(build.path())
        .arg("mpi")
        .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig")));
    let mut cmd = Command::new("timeout");
    cmd.args([
        "120",
        "mpirun",
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        "2",
    ]);
    if tcp {
        cmd.args([
            "-x",
            "HF_TRANSPORT",
            "--mca",
            "pml",
            "ob1",
            "--mca",
            "btl",
            "tcp,self",
        ])
        .env("HF_TRANSPORT", "tcp");
    }
    let out = run(cmd
        .arg(build.path().join("mpi_pingpong"))
        .args(["--iters", "1000", "--sizes", "8,4096"])
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table.contains("over TCP"),
        tcp,
        "the transport named in the header: {table}"
    );
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "header and two sizes: {table}");
    for (row, size) in rows[1..].iter().zip(["8", "4096"]) {
        assert_eq!(row[0], size, "{table}");
        let hf: f64 = row[1].parse().unwrap();
        let mpi: f64 = row[2].parse().unwrap();
        assert!(hf > 0.0 && mpi > 0.0, "{table}");
    }
}

/// `hf_response_buffer` called twice with other sizes, with 0, past the largest message,
/// around the reply ring's bound, before an error, and once with 256 MiB (whose memory
/// should not stay with the engine): see `tests/c/hostile_replies.c`.
#[test]
fn response_buffers_misused_from_c_give_the_right_answers() {
    let fabric = format!("c-hostile-rp-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    run_c_test("hostile_replies", &[fabric.as_ref()]);
}

/// Registered memory from C: parts of a buffer sent without a copy on the sender, received
/// into a buffer, completed together; a cancelled send taken back; bad arguments refused.
/// Once on the zero-copy path, once as measured here (possibly posted): see
/// `tests/c/registered.c`.
#[test]
fn registered_memory_from_c_sends_without_a_copy() {
    for mode in ["single-copy", "posted"] {
        let fabric = format!("c-mem-{mode}-{}", std::process::id());
        let _cleanup = FabricDir(fabric.clone());
        run_c_test("registered", &[fabric.as_ref(), mode.as_ref()]);
    }
}

/// Three C processes make a fabric from a configuration with a switch node
/// (`hf_protocol_from_config`, `hf_register_configured_node`): a ping reports the path
/// through the switch, and learned routing (on in the configuration) reports its samples
/// and route changes among the figures. See `tests/c/config_fabric.c`.
#[test]
fn a_fabric_from_a_configuration_routes_c_pings_through_its_switch() {
    let fabric = format!("c-config-fabric-{}", std::process::id());
    let _cleanup = FabricDir(fabric.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fabric.yaml");
    std::fs::write(
        &config,
        "fabric:\n  name: unused\n  protocol: { enable_ml_routing: true }\nnodes:\n\
         \x20 - { node_id: a, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }\n\
         \x20 - { node_id: sw, hardware_type: network_switch, bandwidth_gbps: 400, latency_ns: 50 }\n\
         \x20 - { node_id: b, hardware_type: cpu_server, bandwidth_gbps: 100, latency_ns: 100 }\n\
         links:\n  - { a: a, b: sw }\n  - { a: sw, b: b }\n",
    )
    .unwrap();
    run_c_test("config_fabric", &[fabric.as_ref(), config.as_os_str()]);
}
