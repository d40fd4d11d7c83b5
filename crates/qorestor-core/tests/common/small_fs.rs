//! A small filesystem for full-disk tests: a tmpfs of a given size mounted on a temporary
//! directory (the suite runs as root), unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs.
pub struct SmallFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB. `None` (after saying why) when mounting is not possible
    /// here; under `CI=true` that is a failure, never a skip.
    pub fn mount(mib: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&mount)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot mount a tmpfs under CI=true: {why}");
            eprintln!("skipped: cannot mount a tmpfs ({why}); run as root");
            return None;
        }
        Some(SmallFs { _dir: dir, mount })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes available to an unprivileged writer now.
    pub fn available(&self) -> u64 {
        let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.mount).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Fills the filesystem to the last byte with a file outside the data directory; removing
    /// the returned path gives the space back.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.mount.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0xA5u8; 64 << 10];
        let mut len = block.len();
        loop {
            match f.write(&block[..len]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if len > 1 => len /= 2,
                Err(_) => break,
            }
        }
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}
