//! Who can change the configuration file.
//!
//! The configuration decides what vgate routes, translates and answers ARP for, and vgate
//! reads it as root. A file any local user can write, or one in a directory where any local
//! user can replace it, would hand the router to every account on the host.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `S_IWOTH`: writable by others.
const WORLD_WRITABLE: u32 = 0o002;
/// `S_ISVTX`: in a directory, only a file's owner may rename or remove it (as in /tmp).
const STICKY: u32 = 0o1000;

/// Why `path` is unsafe to serve from: the file (after following symlinks) is world-writable,
/// or its directory is world-writable without the sticky bit. Empty when neither is true or
/// the file cannot be inspected (reading it reports that).
pub fn unsafe_permissions(path: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(real) = std::fs::canonicalize(path) else {
        return problems;
    };
    if let Ok(meta) = std::fs::metadata(&real) {
        let mode = meta.permissions().mode();
        if mode & WORLD_WRITABLE != 0 {
            problems.push(format!(
                "{} is world-writable (mode {:04o}): any local user could change what vgate \
                 routes; run `chmod o-w {}`",
                real.display(),
                mode & 0o7777,
                real.display()
            ));
        }
    }
    // The directory holding the file, and the one holding the name given when that is a
    // symlink: replacing either entry replaces the configuration.
    let mut dirs: Vec<std::path::PathBuf> =
        real.parent().map(Path::to_path_buf).into_iter().collect();
    let given_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::canonicalize(given_dir)
        && !dirs.contains(&d)
    {
        dirs.push(d);
    }
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & WORLD_WRITABLE != 0 && mode & STICKY == 0 {
            problems.push(format!(
                "directory {} is world-writable without the sticky bit (mode {:04o}): any local \
                 user could replace the configuration there; run `chmod o-w {}`",
                dir.display(),
                mode & 0o7777,
                dir.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("vgate-perm-{tag}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }

    fn file(d: &Dir, mode: u32) -> std::path::PathBuf {
        let f = d.0.join("vgate.toml");
        fs::write(&f, "").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn private_file_in_private_directory_is_fine() {
        let d = dir("ok");
        assert_eq!(unsafe_permissions(&file(&d, 0o644)), Vec::<String>::new());
        // Group-writable is an operator's choice (an admin group), not a hole.
        assert_eq!(unsafe_permissions(&file(&d, 0o664)), Vec::<String>::new());
    }

    #[test]
    fn world_writable_file_is_reported() {
        let d = dir("file");
        let f = file(&d, 0o666);
        let p = unsafe_permissions(&f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("is world-writable (mode 0666)"), "{}", p[0]);
        assert!(p[0].contains("chmod o-w"), "{}", p[0]);
    }

    #[test]
    fn world_writable_directory_needs_the_sticky_bit() {
        let d = dir("dir");
        let f = file(&d, 0o644);
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o777)).unwrap();
        let p = unsafe_permissions(&f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("world-writable without the sticky bit (mode 0777)"),
            "{}",
            p[0]
        );
        fs::set_permissions(&d.0, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(unsafe_permissions(&f), Vec::<String>::new());
    }

    #[test]
    fn symlink_is_judged_by_its_target() {
        let d = dir("link");
        let f = file(&d, 0o666);
        let link = d.0.join("link.toml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(unsafe_permissions(&link).len(), 1);
        // A safe file behind a link in an unsafe directory.
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let open = dir("linkdir");
        fs::set_permissions(&open.0, fs::Permissions::from_mode(0o777)).unwrap();
        let link = open.0.join("link.toml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let p = unsafe_permissions(&link);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains(&open.0.display().to_string()), "{}", p[0]);
    }

    #[test]
    fn missing_file_reports_nothing_here() {
        assert!(unsafe_permissions(Path::new("/nonexistent/vgate.toml")).is_empty());
    }
}
