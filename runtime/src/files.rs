//! Reading and writing the files a user names: model sources, data, checkpoints,
//! predictions.
//!
//! In: a path (and, to read, a size limit). Out: the bytes, or ONE message (without the
//! path; callers print `error: <path>: <message>`) saying why not: `not a regular file
//! (a directory)`, `not a regular file (a FIFO)`, `too large: 2147483648 bytes (the limit
//! is 1 GiB)`... A directory, FIFO or device is refused rather than read: reading
//! `/dev/zero` never ends, a FIFO blocks until a writer comes.
//!
//! Limits: [`DATA_LIMIT`] (1 GiB) for each data file, [`SOURCE_LIMIT`] (64 MiB) for a
//! model source, [`CHECKPOINT_LIMIT`] (4 GiB) for a checkpoint.
//!
//! Writes ([`write_atomic`]) go to `.<name>.tmp-<pid>` in the target's directory, then
//! rename over the target. The target must be absent or a regular file: a symbolic link
//! is refused (a rename would replace the link by a regular file), as are directories,
//! FIFOs and devices. [`check_writable`] checks all that (and that the directory takes a
//! new file) before a long run, so `--save /nonexistent/w.safetensors` fails at once.
//! Temporary files left by killed saves (their pid no longer alive) are removed by the
//! next save to the same path.

use std::fs::{self, File, FileType};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest data file read (`.npy`, `.csv`).
pub const DATA_LIMIT: u64 = 1 << 30;
/// The largest model source (`.mp`) read.
pub const SOURCE_LIMIT: u64 = 64 << 20;
/// The largest checkpoint (`.safetensors`) read.
pub const CHECKPOINT_LIMIT: u64 = 4 << 30;

/// How many characters of a file's content an error message quotes at most.
pub const QUOTE_CHARS: usize = 80;

/// `s`, or its first [`QUOTE_CHARS`] characters and `...` (an error that quotes a 10 MB
/// CSV field must stay one readable line).
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// `1 GiB`, `64 MiB`, else bytes.
fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a non-regular file is, for the message; `None` for a regular file.
fn kind(t: FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a file")
    }
}

fn not_regular(what: &str) -> String {
    format!("not a regular file ({what})")
}

/// Why `path` cannot be opened, from the error of `fs::metadata` (which follows links).
fn open_error(path: &Path, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        // A link whose target is gone is there; say where it points.
        if let Ok(target) = fs::read_link(path) {
            return format!(
                "cannot read the file: it is a symbolic link to '{}', which does not exist",
                clip(&target.display().to_string())
            );
        }
        // The message callers have always printed (`No such file or directory`).
        return format!("cannot read the file: {e}");
    }
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        // ELOOP: the links lead back to themselves.
        return not_regular("a symbolic link loop");
    }
    format!("cannot read the file: {e}")
}

/// The bytes of the regular file `path`, at most `limit` of them (else an error).
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    // Checked before opening: opening a FIFO blocks until a writer comes, and std has no
    // O_NONBLOCK without libc. A file swapped in between this check and the open is a
    // tiny race; the opened handle is checked again below, so at worst a swapped-in FIFO
    // blocks, never is a device read forever.
    let m = fs::metadata(path).map_err(|e| open_error(path, e))?;
    if let Some(what) = kind(m.file_type()) {
        return Err(not_regular(what));
    }
    let file = File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    // The metadata of the opened handle is what gets read (no check-then-open race).
    let m = file.metadata().map_err(|e| format!("cannot read the file: {e}"))?;
    if let Some(what) = kind(m.file_type()) {
        return Err(not_regular(what));
    }
    let too_large = |n: u64| format!("too large: {n} bytes (the limit is {})", human(limit));
    if m.len() > limit {
        return Err(too_large(m.len()));
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The directory `path` is written in (`.` for a bare name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file of this process for `path`, and the prefix of everyone's.
fn temp_names(path: &Path) -> Result<(PathBuf, String), String> {
    let name = path.file_name().ok_or("not a file name")?.to_string_lossy();
    let prefix = format!(".{name}.tmp-");
    Ok((dir_of(path).join(format!("{prefix}{}", std::process::id())), prefix))
}

/// Checks that `path` can be written by [`write_atomic`]: absent or a regular file (not
/// a link, directory, FIFO or device), in an existing directory that takes a new file.
/// Called before training, so a bad `--save` fails before the run, not after it.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let (tmp, _) = temp_names(path)?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err("cannot write: a symbolic link (not replaced: name the file it points to)".into())
        }
        Ok(m) => {
            if let Some(what) = kind(m.file_type()) {
                return Err(format!("cannot write: {}", not_regular(what)));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot write: {e}")),
    }
    let dir = dir_of(path);
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("cannot write: {} is not a directory", dir.display())),
        Err(_) => return Err(format!("cannot write: directory {} not found", dir.display())),
    }
    // The one sure test of "writable" (permissions, read-only mounts, ACLs): create the
    // temporary file the save will use, and remove it.
    File::create(&tmp).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// Whether process `pid` is alive (Linux: `/proc/<pid>`). Elsewhere every process counts
/// as alive, so no other process's temporary file is ever removed.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Removes `.<name>.tmp-<pid>` files next to `path` whose process is gone (a save that
/// was killed between creating and renaming its temporary file).
fn remove_stale(path: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // Only regular files: never follow a link someone planted under that name.
        if pid != std::process::id() && !alive(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename. `path` must pass
/// [`check_writable`] (checked again here: the target may have changed since).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    check_writable(path)?;
    let (tmp, prefix) = temp_names(path)?;
    remove_stale(path, &prefix);
    let dir = dir_of(path);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every platform opens directories).
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_long_text_at_a_character() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert_eq!(c.chars().count(), QUOTE_CHARS + 3);
        assert!(c.ends_with("..."));
    }

    #[test]
    fn limits_read_as_units() {
        assert_eq!(human(DATA_LIMIT), "1 GiB");
        assert_eq!(human(SOURCE_LIMIT), "64 MiB");
        assert_eq!(human(10), "10 bytes");
    }

    #[test]
    fn directories_and_devices_are_not_read() {
        assert_eq!(
            read(Path::new("."), 10).unwrap_err(),
            "not a regular file (a directory)"
        );
        #[cfg(unix)]
        assert_eq!(
            read(Path::new("/dev/zero"), 10).unwrap_err(),
            "not a regular file (a character device)"
        );
    }
}
