//! The image every container of a run starts from, built from the local build with no
//! registry: `FROM scratch` plus the `chronik-server` and `chronik-bench` binaries already
//! built, and exactly the shared libraries `ldd` names for them (with the dynamic loader), each
//! at the path it has on this machine. Nothing is compiled again and nothing is pulled; a
//! statically linked build (`ldd`: not a dynamic executable) simply adds no library.
//!
//! The tag is `chronik:<version>-<first 12 hex digits of the SHA-256 of every file in the
//! image>`, so the image is rebuilt exactly when a binary (or a library) changed, and reused
//! otherwise. The context is a tar archive made in memory and sent to the engine's build API
//! (the classic builder: it needs no BuildKit and no CLI plugin).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use testcontainers::bollard::body_full;
use testcontainers::bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, ListImagesOptionsBuilder, RemoveImageOptions,
};

use super::engine::DockerEngine;
use crate::broker_process::find_broker_binary;

/// The image's repository name.
pub const REPOSITORY: &str = "chronik";
/// Where the broker is in the image.
pub const SERVER_PATH: &str = "/usr/local/bin/chronik-server";
/// Where the bench (whose `toxiproxy` subcommand is the fault proxy) is in the image.
pub const BENCH_PATH: &str = "/usr/local/bin/chronik-bench";
/// Every image the bench built carries this label.
pub const IMAGE_LABEL: &str = "chronik.image";

/// The files of the image: path in the image -> file on this machine.
#[derive(Debug)]
pub struct ImageContents {
    files: BTreeMap<String, PathBuf>,
}

impl ImageContents {
    /// `chronik-server` (`--broker-bin`, `CHRONIK_SERVER_BIN`, or next to this executable),
    /// this `chronik-bench`, and their shared libraries.
    pub fn of_local_build(broker_bin: Option<&Path>) -> anyhow::Result<Self> {
        let server = find_broker_binary(broker_bin)?;
        let bench = std::env::current_exe().context("finding chronik-bench itself")?;
        let mut files = BTreeMap::new();
        files.insert(SERVER_PATH.to_string(), server.clone());
        files.insert(BENCH_PATH.to_string(), bench.clone());
        for binary in [&server, &bench] {
            for library in shared_libraries(binary)? {
                files.insert(library.display().to_string(), library);
            }
        }
        Ok(Self { files })
    }

    /// `chronik:<version>-<content hash>`.
    pub fn tag(&self) -> anyhow::Result<String> {
        let mut hasher = Sha256::new();
        for (path_in_image, file) in &self.files {
            hasher.update(path_in_image.as_bytes());
            hasher.update([0]);
            let mut reader =
                std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
            std::io::copy(&mut reader, &mut hasher)?;
        }
        let digest = hasher.finalize();
        let short: String = digest[..6]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(format!(
            "{REPOSITORY}:{}-{short}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// The build context: a Dockerfile and `rootfs/` with every file at its path.
    fn context_archive(&self) -> anyhow::Result<Vec<u8>> {
        let mut archive = tar::Builder::new(Vec::new());
        // Plain entries only: the engine's tar reader refuses the GNU sparse entries the tar
        // crate writes for files with holes (as linkers leave in debug binaries).
        let regular = |size: u64, mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            header.set_mode(mode);
            header.set_cksum();
            header
        };
        let dockerfile = "FROM scratch\nCOPY rootfs/ /\n";
        let mut header = regular(dockerfile.len() as u64, 0o644);
        archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        for (path_in_image, file) in &self.files {
            let name = format!("rootfs{path_in_image}");
            // Follows symbolic links: the image holds the file itself at the linked path.
            let opened = std::fs::File::open(file)
                .with_context(|| format!("adding {} to the image", file.display()))?;
            let metadata = opened.metadata()?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
            let mut header = regular(metadata.len(), mode);
            archive
                .append_data(&mut header, &name, opened)
                .with_context(|| format!("adding {} to the image", file.display()))?;
        }
        Ok(archive.into_inner()?)
    }
}

/// The shared libraries (and the dynamic loader) `ldd` names for `binary`, as absolute paths;
/// none for a static binary.
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian: libc-bin) to list the binaries' shared libraries")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!("ldd {}: {}", binary.display(), text.trim());
    }
    parse_ldd(&text)
}

/// The absolute paths in `ldd` output; a library it could not find is an error.
fn parse_ldd(text: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line.contains("=> not found") {
            bail!("a shared library is missing: {line}");
        }
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1 (0x...)` is the kernel's.
        let path = match line.split_once("=>") {
            Some((_, resolved)) => resolved.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// The image and whether this call built it.
#[derive(Debug)]
pub struct BrokerImage {
    pub tag: String,
    pub built: bool,
}

/// Builds the image of the local build unless an image with its tag exists.
pub fn ensure_image(
    engine: &DockerEngine,
    broker_bin: Option<&Path>,
) -> anyhow::Result<BrokerImage> {
    let contents = ImageContents::of_local_build(broker_bin)?;
    let tag = contents.tag()?;
    if engine.block_on(engine.docker().inspect_image(&tag)).is_ok() {
        return Ok(BrokerImage { tag, built: false });
    }
    let archive = contents.context_archive()?;
    let labels = HashMap::from([(IMAGE_LABEL.to_string(), "1".to_string())]);
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .version(BuilderVersion::BuilderV1)
        .build();
    engine.block_on(async {
        let mut building =
            engine
                .docker()
                .build_image(options, None, Some(body_full(archive.into())));
        while let Some(step) = building.next().await {
            let step = step.with_context(|| format!("building image {tag}"))?;
            if let Some(error) = step.error_detail.and_then(|detail| detail.message) {
                bail!("building image {tag}: {error}");
            }
        }
        anyhow::Ok(())
    })?;
    engine
        .block_on(engine.docker().inspect_image(&tag))
        .with_context(|| format!("image {tag} was not there after building it"))?;
    remove_older_images(engine, &tag);
    Ok(BrokerImage { tag, built: true })
}

/// Removes the images of earlier builds (each is as large as the binaries) that no container
/// uses; the engine refuses to remove one that a container, running or not, still uses.
fn remove_older_images(engine: &DockerEngine, current: &str) {
    let filters = HashMap::from([("label".to_string(), vec![IMAGE_LABEL.to_string()])]);
    let options = ListImagesOptionsBuilder::new().filters(&filters).build();
    let Ok(images) = engine.block_on(engine.docker().list_images(Some(options))) else {
        return;
    };
    for image in images {
        if image.repo_tags.iter().any(|tag| tag == current) {
            continue;
        }
        for tag in &image.repo_tags {
            let _ = engine.block_on(engine.docker().remove_image(
                tag,
                None::<RemoveImageOptions>,
                None,
            ));
        }
    }
}

/// `chronik-bench image`: builds the image alone and prints its tag.
#[derive(Clone, Debug, clap::Args)]
pub struct ImageArgs {
    /// The chronik-server binary (default: next to chronik-bench).
    #[arg(long, env = "CHRONIK_SERVER_BIN")]
    pub broker_bin: Option<PathBuf>,
}

/// Builds (or finds) the image; prints the tag on standard output and what happened on
/// standard error.
pub fn run(args: &ImageArgs) -> anyhow::Result<()> {
    let engine = DockerEngine::connect()?;
    let image = ensure_image(&engine, args.broker_bin.as_deref())?;
    if image.built {
        eprintln!("built {}", image.tag);
    } else {
        eprintln!("already present: {}", image.tag);
    }
    println!("{}", image.tag);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libfoo.so.1"), "{missing}");
    }

    #[test]
    fn the_tag_follows_the_contents() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("chronik-server");
        std::fs::write(&file, b"one").unwrap();
        let contents = || ImageContents {
            files: BTreeMap::from([(SERVER_PATH.to_string(), file.clone())]),
        };
        let first = contents().tag().unwrap();
        assert_eq!(contents().tag().unwrap(), first);
        assert!(first.starts_with(&format!("chronik:{}-", env!("CARGO_PKG_VERSION"))));
        std::fs::write(&file, b"two").unwrap();
        assert_ne!(contents().tag().unwrap(), first);
    }
}
