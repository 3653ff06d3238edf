//! Hardware detection from procfs and sysfs, and the fabric's hardware compatibility rules.
//!
//! [`detect_hardware_capabilities`] reads the host CPU (`/proc/cpuinfo`, `/proc/meminfo`,
//! `/sys/devices/system/node`), network interfaces (`/sys/class/net`, `/sys/class/infiniband`),
//! NVIDIA GPUs (`/proc/driver/nvidia/gpus`), AMD and Intel GPUs (`/sys/class/drm`) and Habana
//! accelerators (`/sys/class/accel`), and describes each compute device as a
//! [`NodeSignature`]. A missing file means the device is not present: detection never fails.
#![forbid(unsafe_code)]

use crate::model::{
    HardwareType, NodeSignature, MAX_BANDWIDTH_GBPS, MAX_LATENCY_TRAINING_NS, MIN_BANDWIDTH_GBPS,
    QUANTUM_COHERENCE_THRESHOLD_US,
};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// A network interface as found in sysfs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NicInfo {
    /// Interface name.
    pub name: String,
    /// Link speed in Gbit/s, when the driver reports one.
    pub speed_gbps: Option<f64>,
    /// MTU in bytes.
    pub mtu: Option<u32>,
    /// Whether it is backed by a device (not a virtual interface such as a bridge or veth).
    pub physical: bool,
}

/// An InfiniBand port.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IbPortInfo {
    /// HCA name (`mlx5_0`).
    pub device: String,
    /// Port number.
    pub port: u32,
    /// Rate in Gbit/s.
    pub rate_gbps: Option<f64>,
    /// Port state (`ACTIVE`, `DOWN`, ...).
    pub state: Option<String>,
}

/// Everything detection found, before it is mapped to node signatures.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct HardwareReport {
    /// Host name (node ids are prefixed with it).
    pub hostname: String,
    /// CPU model string.
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    pub cpu_cores: usize,
    /// NUMA nodes.
    pub numa_nodes: usize,
    /// Physical memory, GB.
    pub memory_gb: Option<f64>,
    /// Network interfaces other than loopback.
    pub nics: Vec<NicInfo>,
    /// InfiniBand ports.
    pub ib_ports: Vec<IbPortInfo>,
    /// Accelerators: hardware type, model string, PCIe bandwidth in Gbit/s if known, memory GB.
    pub accelerators: Vec<(HardwareType, String, Option<f64>, Option<f64>)>,
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn entries(dir: impl AsRef<Path>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// PCIe bandwidth of a device directory from `current_link_speed` (`16.0 GT/s PCIe`) and
/// `current_link_width`, after line encoding (8b/10b below 8 GT/s, 128b/130b from 8 GT/s).
fn pcie_gbps(dev: &Path) -> Option<f64> {
    let speed: f64 = read(dev.join("current_link_speed"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let width: f64 = read(dev.join("current_link_width"))?.parse().ok()?;
    let encoding = if speed < 8.0 { 0.8 } else { 128.0 / 130.0 };
    let gbps = speed * width * encoding;
    (gbps > 0.0).then_some(gbps)
}

/// Reads the machine under `root` (`/` for the real one; tests pass a fake tree).
pub fn detect_report(root: &Path) -> HardwareReport {
    let r = |p: &str| root.join(p.trim_start_matches('/'));
    let mut rep = HardwareReport {
        hostname: read(r("/proc/sys/kernel/hostname")).unwrap_or_else(|| "localhost".into()),
        ..Default::default()
    };
    if let Some(cpuinfo) = read(r("/proc/cpuinfo")) {
        for line in cpuinfo.lines() {
            let mut kv = line.splitn(2, ':');
            let (k, v) = (
                kv.next().unwrap_or("").trim(),
                kv.next().unwrap_or("").trim(),
            );
            if k == "processor" {
                rep.cpu_cores += 1;
            } else if k == "model name" && rep.cpu_model.is_none() {
                rep.cpu_model = Some(v.to_string());
            }
        }
    }
    rep.numa_nodes = entries(r("/sys/devices/system/node"))
        .iter()
        .filter(|p| {
            let n = file_name(p);
            n.strip_prefix("node")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    if let Some(meminfo) = read(r("/proc/meminfo")) {
        rep.memory_gb = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib * 1024.0 / 1e9);
    }
    for nic in entries(r("/sys/class/net")) {
        let name = file_name(&nic);
        if name == "lo" {
            continue;
        }
        rep.nics.push(NicInfo {
            speed_gbps: read(nic.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|&mbps| mbps > 0)
                .map(|mbps| mbps as f64 / 1000.0),
            mtu: read(nic.join("mtu")).and_then(|s| s.parse().ok()),
            physical: nic.join("device").exists(),
            name,
        });
    }
    for hca in entries(r("/sys/class/infiniband")) {
        for port in entries(hca.join("ports")) {
            rep.ib_ports.push(IbPortInfo {
                device: file_name(&hca),
                port: file_name(&port).parse().unwrap_or(0),
                rate_gbps: read(port.join("rate"))
                    .and_then(|s| s.split_whitespace().next()?.parse().ok()),
                state: read(port.join("state"))
                    .map(|s| s.rsplit(':').next().unwrap_or(&s).trim().to_string()),
            });
        }
    }
    for gpu in entries(r("/proc/driver/nvidia/gpus")) {
        let info = read(gpu.join("information")).unwrap_or_default();
        let model = info
            .lines()
            .find_map(|l| l.strip_prefix("Model:"))
            .map(|m| m.trim().to_string())
            .unwrap_or_else(|| "NVIDIA GPU".into());
        let hw = if model.contains("H100") {
            HardwareType::NvidiaH100
        } else if model.contains("A100") {
            HardwareType::NvidiaA100
        } else if model.contains("4090") {
            HardwareType::NvidiaRtx4090
        } else {
            HardwareType::Custom
        };
        let pci = r("/sys/bus/pci/devices").join(file_name(&gpu));
        rep.accelerators.push((hw, model, pcie_gbps(&pci), None));
    }
    for card in entries(r("/sys/class/drm")) {
        let name = file_name(&card);
        if !name.starts_with("card") || name.contains('-') {
            continue; // connectors (card0-HDMI-A-1) are not devices
        }
        let dev = card.join("device");
        let vendor = read(dev.join("vendor")).unwrap_or_default();
        let device = read(dev.join("device")).unwrap_or_default().to_lowercase();
        let (hw, model) = match vendor.as_str() {
            // NVIDIA cards are reported from the driver's own directory above.
            "0x1002" => match device.as_str() {
                "0x74a1" | "0x74b5" => (HardwareType::AmdMi300x, "AMD Instinct MI300X"),
                "0x740c" | "0x7408" => (HardwareType::AmdMi250x, "AMD Instinct MI250X"),
                _ => (HardwareType::Custom, "AMD GPU"),
            },
            "0x8086" => (HardwareType::Custom, "Intel GPU"),
            _ => continue,
        };
        let vram = read(dev.join("mem_info_vram_total"))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|b| b / 1e9);
        rep.accelerators
            .push((hw, format!("{model} ({device})"), pcie_gbps(&dev), vram));
    }
    for acc in entries(r("/sys/class/accel")) {
        let dev = acc.join("device");
        if read(dev.join("vendor")).as_deref() == Some("0x1da3") {
            let hw = if read(dev.join("device")).as_deref() == Some("0x1020") {
                HardwareType::IntelGaudi2
            } else {
                HardwareType::Custom
            };
            rep.accelerators
                .push((hw, "Habana accelerator".into(), pcie_gbps(&dev), None));
        }
    }
    rep
}

/// Maps a report to node signatures: one `cpu_server` node for the host (bandwidth of its
/// fastest NIC or InfiniBand port) and one node per accelerator (bandwidth of its PCIe link).
/// Bandwidths are clamped to the fabric's supported range; the measured figure stays in the
/// metadata.
pub fn signatures(rep: &HardwareReport) -> Vec<NodeSignature> {
    let host_id = sanitize(&rep.hostname);
    let clamp = |g: f64| g.clamp(MIN_BANDWIDTH_GBPS, MAX_BANDWIDTH_GBPS);
    let fastest = rep
        .nics
        .iter()
        .filter_map(|n| n.speed_gbps)
        .chain(rep.ib_ports.iter().filter_map(|p| p.rate_gbps))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let mut meta = Map::new();
    meta.insert("cpu_model".into(), json!(rep.cpu_model));
    meta.insert("numa_nodes".into(), json!(rep.numa_nodes));
    meta.insert(
        "nics".into(),
        serde_json::to_value(&rep.nics).unwrap_or(Value::Null),
    );
    meta.insert(
        "ib_ports".into(),
        serde_json::to_value(&rep.ib_ports).unwrap_or(Value::Null),
    );
    meta.insert("measured_bandwidth_gbps".into(), json!(fastest));
    let mut cpu = NodeSignature::new(
        format!("{host_id}-cpu"),
        HardwareType::CpuServer,
        clamp(fastest.unwrap_or(MIN_BANDWIDTH_GBPS)),
        0,
    )
    .expect("sanitized id and clamped bandwidth are valid");
    cpu.compute_units = Some(rep.cpu_cores as u64);
    cpu.memory_gb = rep.memory_gb;
    cpu.host = Some(rep.hostname.clone()).filter(|h| !h.is_empty() && !h.contains('\0'));
    cpu.metadata = Some(meta);
    let mut out = vec![cpu];
    for (i, (hw, model, pcie, mem)) in rep.accelerators.iter().enumerate() {
        let mut n = NodeSignature::new(
            format!("{host_id}-acc{i}"),
            *hw,
            clamp(pcie.unwrap_or(MIN_BANDWIDTH_GBPS)),
            0,
        )
        .expect("sanitized id and clamped bandwidth are valid");
        n.memory_gb = *mem;
        n.host = out[0].host.clone();
        let mut m = Map::new();
        m.insert("model".into(), json!(model));
        m.insert("pcie_gbps".into(), json!(pcie));
        n.metadata = Some(m);
        out.push(n);
    }
    out
}

fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(50)
        .collect();
    if s.is_empty() {
        "host".into()
    } else {
        s
    }
}

/// The reference's `detect_hardware_capabilities`: signatures of this machine's devices.
pub fn detect_hardware_capabilities() -> Vec<NodeSignature> {
    signatures(&detect_report(Path::new("/")))
}

/// Why a node is not compatible with the fabric; empty when it is.
pub fn compatibility_problems(node: &NodeSignature) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = node.validate() {
        out.push(e.to_string());
    }
    if !(MIN_BANDWIDTH_GBPS..=MAX_BANDWIDTH_GBPS).contains(&node.bandwidth_gbps) {
        out.push(format!(
            "bandwidth_gbps {} is outside the supported {MIN_BANDWIDTH_GBPS}..={MAX_BANDWIDTH_GBPS}",
            node.bandwidth_gbps
        ));
    }
    if node.latency_ns > MAX_LATENCY_TRAINING_NS {
        out.push(format!(
            "latency_ns {} exceeds the largest budget of any workload ({MAX_LATENCY_TRAINING_NS})",
            node.latency_ns
        ));
    }
    if node.hardware_type.is_quantum() {
        match node.quantum_coherence_time_us {
            Some(t) if t >= QUANTUM_COHERENCE_THRESHOLD_US => {}
            Some(t) => out.push(format!(
                "quantum_coherence_time_us {t} is below the {QUANTUM_COHERENCE_THRESHOLD_US} µs \
                 threshold"
            )),
            None if node.hardware_type == HardwareType::QuantumQpu => {} // reported by validate
            None => out.push("quantum_coherence_time_us is required for quantum hardware".into()),
        }
    }
    if node.hardware_type.is_neuromorphic() && node.neuromorphic_neurons == Some(0) {
        out.push("neuromorphic_neurons must be positive".into());
    }
    if node.photonic_channels == Some(0) {
        out.push("photonic_channels must be positive".into());
    }
    out
}

/// The reference's `validate_hardware_compatibility`.
pub fn validate_hardware_compatibility(node: &NodeSignature) -> bool {
    compatibility_problems(node).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn a_fake_machine_is_read_and_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "proc/sys/kernel/hostname", "node7\n");
        write(
            root,
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Test CPU\n\nprocessor\t: 1\nmodel name\t: Test CPU\n",
        );
        write(root, "proc/meminfo", "MemTotal:       16000000 kB\n");
        fs::create_dir_all(root.join("sys/devices/system/node/node0")).unwrap();
        fs::create_dir_all(root.join("sys/devices/system/node/node1")).unwrap();
        write(root, "sys/class/net/eth0/speed", "100000\n");
        write(root, "sys/class/net/eth0/mtu", "9000\n");
        fs::create_dir_all(root.join("sys/class/net/eth0/device")).unwrap();
        write(root, "sys/class/net/veth1/speed", "-1\n");
        write(
            root,
            "sys/class/infiniband/mlx5_0/ports/1/rate",
            "200 Gb/sec (4X HDR)\n",
        );
        write(
            root,
            "sys/class/infiniband/mlx5_0/ports/1/state",
            "4: ACTIVE\n",
        );
        write(
            root,
            "proc/driver/nvidia/gpus/0000:17:00.0/information",
            "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 1\n",
        );
        write(
            root,
            "sys/bus/pci/devices/0000:17:00.0/current_link_speed",
            "32.0 GT/s PCIe\n",
        );
        write(
            root,
            "sys/bus/pci/devices/0000:17:00.0/current_link_width",
            "16\n",
        );
        write(root, "sys/class/drm/card1/device/vendor", "0x1002\n");
        write(root, "sys/class/drm/card1/device/device", "0x74a1\n");
        write(root, "sys/class/drm/card1-DP-1/status", "connected\n");

        let rep = detect_report(root);
        assert_eq!(rep.cpu_cores, 2);
        assert_eq!(rep.numa_nodes, 2);
        assert_eq!(rep.cpu_model.as_deref(), Some("Test CPU"));
        assert_eq!(rep.nics.len(), 2);
        assert!(rep.nics[0].physical && !rep.nics[1].physical);
        assert_eq!(rep.ib_ports[0].rate_gbps, Some(200.0));
        assert_eq!(rep.ib_ports[0].state.as_deref(), Some("ACTIVE"));
        let sigs = signatures(&rep);
        assert_eq!(sigs.len(), 3);
        assert_eq!(sigs[0].node_id, "node7-cpu");
        assert_eq!(sigs[0].bandwidth_gbps, 200.0);
        assert_eq!(sigs[0].compute_units, Some(2));
        assert_eq!(sigs[1].hardware_type, HardwareType::NvidiaH100);
        let pcie = 32.0 * 16.0 * 128.0 / 130.0;
        assert!((sigs[1].bandwidth_gbps - pcie).abs() < 1e-9);
        assert_eq!(sigs[2].hardware_type, HardwareType::AmdMi300x);
        assert!(sigs.iter().all(validate_hardware_compatibility));
    }

    #[test]
    fn an_empty_machine_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sigs = signatures(&detect_report(dir.path()));
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].node_id, "localhost-cpu");
        assert!(!detect_hardware_capabilities().is_empty());
    }

    #[test]
    fn compatibility_rules() {
        let mut q = NodeSignature::new("q", HardwareType::QuantumAnnealer, 10.0, 1).unwrap();
        q.hardware_type = HardwareType::QuantumQpu;
        q.quantum_coherence_time_us = Some(5.0);
        assert!(!validate_hardware_compatibility(&q));
        q.quantum_coherence_time_us = Some(50.0);
        assert!(validate_hardware_compatibility(&q));
        let mut fast = NodeSignature::new("f", HardwareType::CpuServer, 1000.5, 1).unwrap();
        assert!(compatibility_problems(&fast)[0].contains("bandwidth_gbps"));
        fast.bandwidth_gbps = 0.5;
        assert!(!validate_hardware_compatibility(&fast));
    }
}
