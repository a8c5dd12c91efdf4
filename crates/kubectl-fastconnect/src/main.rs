//! `kubectl fastconnect`: a kubectl plugin for FastConnectConnections. kubectl finds it on PATH
//! by its name, `kubectl-fastconnect`.
//!
//! Each command gathers its inputs (I/O, in this file) and hands them to a pure function that
//! renders the answer, so that what a user reads is unit-tested without a cluster.

mod cli;
mod cluster;
mod console;
mod error;
mod metros;
mod new;
mod ports;
mod status;
mod table;

use std::process::ExitCode;

use clap::Parser;
use fastconnect_operator::{
    controller::resolve,
    crd::{FastConnectConnection, SourcePort},
};
use kube::{Api, api::ListParams};

use crate::{
    cli::{Cli, Command, NewArgs},
    cluster::Cluster,
    console::Console,
    error::Error,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command and returns what it prints.
async fn run(cli: Cli) -> Result<String, Error> {
    let cluster = Cluster::connect(&cli.kube).await?;
    match cli.command {
        Command::Ports { api, company } => {
            let console = Console::connect(&cluster, &api).await?;
            let (ports, metros) = tokio::join!(console.ports(&company), console.metros());
            Ok(ports::render(&ports?, &metros?))
        }
        Command::Metros {
            api,
            company,
            port,
            port_id,
        } => {
            let console = Console::connect(&cluster, &api).await?;
            let metros = console.metros().await?;
            let wanted = SourcePort {
                name: port,
                id: port_id,
            };
            let from = match (company, wanted.name.is_some() || wanted.id.is_some()) {
                (Some(company), true) => {
                    let ports = console.ports(&company).await?;
                    // Speed 0: whether a metro can be reached does not depend on the capacity
                    // left; the port must still exist, be unambiguous and ACTIVE.
                    Some(resolve::port(&ports, &wanted, &company, 0)?.clone())
                }
                _ => None,
            };
            Ok(metros::render(&metros, from.as_ref()))
        }
        Command::New(args) => new_resource(&cluster, &args).await,
        Command::Status { all_namespaces } => {
            let fccs = if all_namespaces {
                Api::<FastConnectConnection>::all(cluster.client.clone())
            } else {
                Api::namespaced(cluster.client.clone(), &cluster.namespace)
            };
            let scope = if all_namespaces {
                "in all namespaces".to_owned()
            } else {
                format!("in namespace {}", cluster.namespace)
            };
            let listed = fccs
                .list(&ListParams::default())
                .await
                .map_err(|source| Error::list_connections(scope, source))?;
            Ok(status::render(
                &listed.items,
                all_namespaces,
                jiff::Timestamp::now(),
            ))
        }
    }
}

/// Checks what the operator checks before it orders, in the same order: the OCID Secret, then
/// port and metro.
async fn new_resource(cluster: &Cluster, args: &NewArgs) -> Result<String, Error> {
    let fcc = new::resource(args, &cluster.namespace);
    cluster
        .check_ocid(&args.ocid_secret, &args.ocid_key)
        .await?;
    let console = Console::connect(cluster, &args.api).await?;
    // Both lists at once; a failure of the ports' call wins, since it names the company.
    let (ports, metros) = tokio::join!(console.ports(&args.company), console.metros());
    let (ports, metros) = (ports?, metros?);
    let order = new::resolve(&fcc, &ports, &metros)?;
    new::render(&fcc, &order, &ports, &metros)
}
