//! `hyperfabric config`: validate, show and migrate configuration files.

use super::{config_json, load, print_json, Source};
use clap::Subcommand;
use hyperfabric::Error;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Check a configuration file; prints a one-line error naming file, line and field, and
    /// a warning for each key of the original package's layout without a meaning here.
    Validate {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Print the configuration as it is read: in the native layout, every default filled in.
    Show {
        /// The file; the built-in example AI cluster when absent.
        file: Option<std::path::PathBuf>,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Write a configuration (of the original package's layout, say) in the native layout.
    Migrate {
        /// The file.
        file: std::path::PathBuf,
        /// Where to write it (atomically); standard output when absent.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

pub fn run(c: ConfigCmd) -> Result<(), Error> {
    match c {
        ConfigCmd::Show { file, json } => {
            let cfg = load(&Source { config: file, json })?;
            if json {
                return print_json(&config_json::of(&cfg));
            }
            print!("{}", cfg.to_yaml());
            Ok(())
        }
        ConfigCmd::Migrate { file, output } => {
            let cfg = load(&Source {
                config: Some(file.clone()),
                json: false,
            })?;
            match output {
                Some(out) => {
                    hyperfabric::config::save_fabric_config(&cfg, &out)?;
                    eprintln!(
                        "{}: written in the native layout ({} keys dropped)",
                        out.display(),
                        cfg.warnings
                            .iter()
                            .filter(|w| w.contains("ignored"))
                            .count()
                    );
                }
                None => print!("{}", cfg.to_yaml()),
            }
            Ok(())
        }
        ConfigCmd::Validate { file } => {
            let cfg = load(&Source {
                config: Some(file.clone()),
                json: false,
            })?;
            let t = cfg.topology()?;
            println!(
                "{}: ok: fabric {:?}, {} nodes, {} links ({} policy), {} zones",
                file.display(),
                cfg.fabric.name,
                t.node_count(),
                t.link_count(),
                t.link_policy(),
                cfg.zones.len()
            );
            Ok(())
        }
    }
}
