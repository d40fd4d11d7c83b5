//! `qorestor ost`: the OST client commands (`put`, `get`, `ls`, `rm`: a network client of an
//! OST server; they open no data directory) and `show` (the storage units and images of the
//! data directory).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use qorestor_core::ContainerKind;
use qorestor_ost::{ClientMode, ImageSpec, OstClient};
use serde::Serialize;

use crate::context::{Ctx, UsageError};
use crate::output;

/// The environment variable holding the OST user's password.
pub const PASSWORD_ENV: &str = "QORESTOR_OST_PASSWORD";

/// How a client command reaches the server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The OST server, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// The user (role ost or administrator).
    #[arg(long)]
    user: String,
    /// A file whose first line is the password (else QORESTOR_OST_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// The image a command is about.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The storage unit (an ost container).
    #[arg(long)]
    lsu: String,
    /// The image name.
    #[arg(long)]
    image: String,
}

/// `ost` subcommands.
#[derive(Debug, Subcommand)]
pub enum OstCommand {
    /// Write FILE (or stdin) as a new image. JSON: {"lsu", "image", "mode", "logical_bytes",
    /// "bytes_sent"} (bytes_sent: every byte that crossed the socket, both ways).
    Put {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: ImageArgs,
        /// auto (optimized where the storage unit allows it), passthrough (raw bytes; the
        /// server deduplicates) or dedupe (optimized, refused where not possible).
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: ClientMode,
        /// The input (default `-`: stdin).
        #[arg(default_value = "-")]
        file: String,
    },
    /// Read an image to FILE (or stdout).
    Get {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: ImageArgs,
        /// The output (default `-`: stdout).
        #[arg(default_value = "-")]
        file: String,
    },
    /// List the images of a storage unit (JSON: [{"name", "logical_bytes", "date", "copy",
    /// "properties"}]), or without --lsu the storage units.
    Ls {
        #[command(flatten)]
        server: ServerArgs,
        /// The storage unit.
        #[arg(long)]
        lsu: Option<String>,
    },
    /// Delete an image.
    Rm {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        target: ImageArgs,
    },
    /// Show the storage units (ost containers) of the data directory and their images.
    Show,
}

fn parse_mode(s: &str) -> Result<ClientMode, String> {
    s.parse::<ClientMode>().map_err(|e| e.to_string())
}

/// The OST password (the network-client commands always run in their own process, never
/// through the daemon: the process's own files and environment).
fn password(file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(f) = file {
        return crate::secret::read_file_line(&crate::cmdio::Io::own(), f, "OST password");
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => Ok(p.into_bytes()),
        _ => Err(UsageError(format!("give the OST password with --password-file FILE or {PASSWORD_ENV}")).into()),
    }
}

fn connect(s: &ServerArgs) -> Result<OstClient> {
    let password = password(s.password_file.as_deref())?;
    OstClient::connect(&s.server, &s.user, &password).with_context(|| format!("cannot log in to {}", s.server))
}

#[derive(Serialize)]
struct PutReport {
    lsu: String,
    image: String,
    mode: &'static str,
    logical_bytes: u64,
    bytes_sent: u64,
}

#[derive(Serialize)]
struct ImageLine {
    name: String,
    logical_bytes: u64,
    date: u64,
    copy: u32,
    properties: String,
}

impl From<qorestor_ost::ImageInfo> for ImageLine {
    fn from(i: qorestor_ost::ImageInfo) -> Self {
        ImageLine { name: i.name, logical_bytes: i.logical_bytes, date: i.date, copy: i.copy, properties: i.properties }
    }
}

fn images_table(images: &[ImageLine]) -> String {
    let mut t = output::Table::new(&[
        ("IMAGE", output::Align::Left),
        ("SIZE", output::Align::Right),
        ("DATE", output::Align::Right),
        ("COPY", output::Align::Right),
    ]);
    for i in images {
        t.row(vec![i.name.clone(), output::bytes(i.logical_bytes), i.date.to_string(), i.copy.to_string()]);
    }
    t.render()
}

/// Runs an `ost` subcommand.
pub fn run(ctx: &Ctx, cmd: OstCommand) -> Result<()> {
    match cmd {
        OstCommand::Put { server, target: ImageArgs { lsu, image }, mode, file } => {
            let mut client = connect(&server)?;
            let mut input: Box<dyn Read> = if file == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(&file).with_context(|| format!("cannot open {file}"))?)
            };
            let mut w = client.create(&lsu, &image, &ImageSpec::default(), mode)?;
            let optimized = w.is_optimized();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).with_context(|| format!("cannot read {file}")),
                };
                w.write_all(&buf[..n])?;
            }
            let logical_bytes = w.close()?;
            let bytes_sent = client.bytes_transferred();
            client.close()?;
            let report = PutReport {
                lsu,
                image,
                mode: if optimized { "optimized" } else { "passthrough" },
                logical_bytes,
                bytes_sent,
            };
            ctx.emit(&report, || {
                format!(
                    "{}/{}: {} written {}, {} crossed the network",
                    report.lsu,
                    report.image,
                    output::bytes(report.logical_bytes),
                    report.mode,
                    output::bytes(report.bytes_sent)
                )
            })
        }
        OstCommand::Get { server, target: ImageArgs { lsu, image }, file } => {
            let mut client = connect(&server)?;
            let mut r = client.open(&lsu, &image)?;
            let mut out: Box<dyn Write> = if file == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::fs::File::create(&file).with_context(|| format!("cannot create {file}"))?)
            };
            r.copy_to(&mut out).with_context(|| format!("cannot restore {lsu}/{image}"))?;
            out.flush()?;
            r.close()?;
            Ok(())
        }
        OstCommand::Ls { server, lsu } => {
            let mut client = connect(&server)?;
            match lsu {
                Some(lsu) => {
                    let images: Vec<ImageLine> = client.images(&lsu)?.into_iter().map(ImageLine::from).collect();
                    ctx.emit(&images, || images_table(&images))
                }
                None => {
                    let lsus: Vec<serde_json::Value> = client
                        .lsus()?
                        .into_iter()
                        .map(|l| {
                            serde_json::json!({"name": l.name, "capacity": l.capacity, "logical_bytes": l.logical_bytes,
                                "physical_bytes": l.physical_bytes, "optimized": l.optimized})
                        })
                        .collect();
                    ctx.emit(&lsus, || {
                        lsus.iter().map(|l| l["name"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join("\n")
                    })
                }
            }
        }
        OstCommand::Rm { server, target: ImageArgs { lsu, image } } => {
            let mut client = connect(&server)?;
            client.delete(&lsu, &image)?;
            ctx.emit(&serde_json::json!({"lsu": lsu, "image": image, "deleted": true}), || {
                format!("deleted {lsu}/{image}")
            })
        }
        OstCommand::Show => show(ctx),
    }
}

fn show(ctx: &Ctx) -> Result<()> {
    let engine = ctx.open("qorestor ost show")?;
    #[derive(Serialize)]
    struct Lsu {
        name: String,
        storage_group: String,
        logical_bytes: u64,
        images: Vec<ImageLine>,
    }
    let mut lsus = Vec::new();
    for c in engine.containers(None)?.into_iter().filter(|c| c.kind == ContainerKind::Ost) {
        let owned = engine.owned_streams(&c.name, ContainerKind::Ost)?;
        let mut images = Vec::new();
        for s in engine.streams(&c.name)? {
            let meta = owned.image_meta(&s.name)?.unwrap_or_default();
            let date = if meta.date == 0 { s.created } else { meta.date };
            images.push(ImageLine {
                name: s.name,
                logical_bytes: s.logical_bytes,
                date,
                copy: meta.copy.max(1),
                properties: meta.properties,
            });
        }
        lsus.push(Lsu { name: c.name, storage_group: c.storage_group, logical_bytes: c.logical_bytes, images });
    }
    ctx.emit(&lsus, || {
        lsus.iter()
            .map(|l| {
                format!(
                    "{} ({}, {})\n{}",
                    l.name,
                    l.storage_group,
                    output::bytes(l.logical_bytes),
                    images_table(&l.images)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}
