//! `hyperfabric zones [list|create|delete|assign|unassign]`: the zones of a running fabric,
//! changed with the API's rules (capacity, `max_nodes`, quantum coherence) by a protocol
//! that hosts no node: nothing of this command is left in the fabric but the change.

use super::attach::{protocol, registry, FabricArgs};
use hyperfabric::model::FabricZone;
use hyperfabric::Error;

#[derive(clap::Args, Debug)]
pub struct ZonesArgs {
    #[command(subcommand)]
    what: Option<ZonesCmd>,
    #[command(flatten)]
    fabric: FabricArgs,
    /// Print JSON instead of a table (`list`).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum ZonesCmd {
    /// Every zone with its members (the default).
    List,
    /// Create a zone.
    Create {
        /// Zone id.
        zone_id: String,
        /// Zone type (compute_cluster, storage_tier, ...).
        #[arg(long = "type", default_value = "compute_cluster")]
        zone_type: String,
        /// Isolation level (none, low, medium, high, quantum_secure).
        #[arg(long, default_value = "medium")]
        isolation: String,
        /// Most members.
        #[arg(long, default_value_t = 64)]
        max_nodes: u32,
        /// Bandwidth reserved for the zone, Gbit/s.
        #[arg(long, default_value_t = 1.0)]
        bandwidth_gbps: f64,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Members must be quantum-capable.
        #[arg(long)]
        quantum_coherence: bool,
        /// Neuromorphic optimisation.
        #[arg(long)]
        neuromorphic: bool,
    },
    /// Delete a zone.
    Delete { zone_id: String },
    /// Put a node into a zone.
    Assign { zone_id: String, node: String },
    /// Take a node out of a zone.
    Unassign { zone_id: String, node: String },
}

pub fn run(args: ZonesArgs) -> Result<(), Error> {
    let (cfg, fabric) = args.fabric.load()?;
    let reg = registry(&fabric)?;
    let what = args.what.unwrap_or(ZonesCmd::List);
    if let ZonesCmd::List = what {
        let table = reg.zones()?;
        if args.json {
            let zones: Vec<serde_json::Value> = table
                .zones
                .iter()
                .map(|z| {
                    let mut v = serde_json::to_value(z).unwrap_or_default();
                    v["members"] = serde_json::json!(table.members.get(&z.zone_id));
                    v
                })
                .collect();
            return super::print_json(&zones);
        }
        let rows: Vec<Vec<String>> = table
            .zones
            .iter()
            .map(|z| {
                let members: Vec<&str> = table
                    .members
                    .get(&z.zone_id)
                    .map(|m| m.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                vec![
                    z.zone_id.clone(),
                    z.zone_type.to_string(),
                    z.isolation_level.to_string(),
                    format!("{}/{}", members.len(), z.max_nodes),
                    z.required_bandwidth_gbps.to_string(),
                    members.join(","),
                ]
            })
            .collect();
        super::table(
            &["zone_id", "type", "isolation", "members", "gbit_s", "nodes"],
            &rows,
        );
        return Ok(());
    }
    drop(reg);
    let p = protocol(&cfg, &fabric)?;
    let done = match what {
        ZonesCmd::List => unreachable!("answered above"),
        ZonesCmd::Create {
            zone_id,
            zone_type,
            isolation,
            max_nodes,
            bandwidth_gbps,
            description,
            quantum_coherence,
            neuromorphic,
        } => {
            let mut z = FabricZone::new(
                &zone_id,
                zone_type.parse().map_err(Error::InvalidArgument)?,
                isolation.parse().map_err(Error::InvalidArgument)?,
                max_nodes,
                bandwidth_gbps,
            )?;
            z.description = description;
            z.quantum_coherence_required = quantum_coherence;
            z.neuromorphic_optimization = neuromorphic;
            p.create_zone(z)?;
            format!("zone {zone_id:?} created")
        }
        ZonesCmd::Delete { zone_id } => {
            p.delete_zone(&zone_id)?;
            format!("zone {zone_id:?} deleted")
        }
        ZonesCmd::Assign { zone_id, node } => {
            p.assign_to_zone(&zone_id, &node)?;
            format!("{node:?} assigned to zone {zone_id:?}")
        }
        ZonesCmd::Unassign { zone_id, node } => {
            p.unassign_from_zone(&zone_id, &node)?;
            format!("{node:?} taken out of zone {zone_id:?}")
        }
    };
    drop(p);
    println!("{done}");
    Ok(())
}
