//! Who may do what where, as pure rules: which part of the tree is
//! writable, whose per-client area an object is in, which credential a
//! caller acts with there, and what a caller's own area is called. The NFS
//! door (`fs.rs`) asks these and lets the kernel enforce file modes.

use std::path::{Path, PathBuf};

use super::handle::Zone;
use super::perm::Cred;
use crate::config::Squash;
use crate::mac::Mac;

/// Where the per-client areas appear in the client's tree.
pub const CLIENTS_DIR: &str = "var/clients";
/// Seed for new per-client areas (hidden from clients), see `rootfs prepare`.
pub const TEMPLATE: &str = "var/clients/template";
/// Name of the caller's own area inside `/var/clients`.
pub const MYSELF: &str = "myself";

/// Where an object lies, which decides what may be done there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The shared tree; `true` inside a writable subtree.
    Tree(bool),
    /// A per-client area, by its id.
    Area(String),
}

/// The layout rules of one export.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Writable subtrees, relative to the tree's root.
    pub writable: Vec<PathBuf>,
    pub squash: Squash,
    /// `[[clients]] name`s for areas, by MAC.
    pub names: Vec<(Mac, String)>,
}

impl Layout {
    /// The place of the object at `rel` (relative to its zone's root).
    pub fn place(&self, zone: Zone, rel: &Path) -> Place {
        match zone {
            Zone::Areas => {
                let id = rel.iter().next().unwrap_or_default();
                Place::Area(id.to_string_lossy().into_owned())
            }
            Zone::Tree => Place::Tree(
                !rel.starts_with(CLIENTS_DIR) && self.writable.iter().any(|w| rel.starts_with(w)),
            ),
        }
    }

    /// The credential a caller acts with at `place` (`None`: AUTH_NONE).
    pub fn cred(&self, auth: Option<&Cred>, place: &Place) -> Cred {
        let Some(c) = auth else {
            return Cred::nobody();
        };
        let squash = match self.squash {
            Squash::All => true,
            Squash::None => false,
            Squash::Writable => *place != Place::Tree(false),
        };
        if squash { c.squashed() } else { c.clone() }
    }

    /// The area id of a client: its `[[clients]] name`, else its MAC as
    /// pxelinux writes it (`52-54-00-12-34-56`); `None` when we do not know
    /// who the caller is (it gets no area).
    pub fn area_id(&self, mac: Option<Mac>) -> Option<String> {
        let mac = mac?;
        Some(
            self.names
                .iter()
                .find(|(m, _)| *m == mac)
                .map_or_else(|| mac.to_string().replace(':', "-"), |(_, n)| n.clone()),
        )
    }

    /// Whether `rel` is the per-client directory or one of the directories
    /// holding it: removing or renaming those would take every client's
    /// area with it.
    pub fn holds_areas(&self, zone: Zone, rel: &Path) -> bool {
        zone == Zone::Tree && Path::new(CLIENTS_DIR).starts_with(rel) && !rel.as_os_str().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(squash: Squash) -> Layout {
        Layout {
            writable: vec!["var".into(), "home".into()],
            squash,
            names: vec![(Mac([2, 0, 0, 0, 0, 9]), "kiosk".into())],
        }
    }

    #[test]
    fn places_follow_the_writable_subtrees() {
        let l = layout(Squash::Writable);
        assert_eq!(
            l.place(Zone::Tree, Path::new("etc/shadow")),
            Place::Tree(false)
        );
        assert_eq!(l.place(Zone::Tree, Path::new("")), Place::Tree(false));
        assert_eq!(l.place(Zone::Tree, Path::new("var/log")), Place::Tree(true));
        assert_eq!(l.place(Zone::Tree, Path::new("var")), Place::Tree(true));
        // a name that merely starts like a writable one is not inside it
        assert_eq!(
            l.place(Zone::Tree, Path::new("variable")),
            Place::Tree(false)
        );
        // the per-client directory itself is not the shared writable /var
        assert_eq!(
            l.place(Zone::Tree, Path::new("var/clients")),
            Place::Tree(false)
        );
        assert_eq!(
            l.place(Zone::Areas, Path::new("02-00-00-00-00-0a/adjtime")),
            Place::Area("02-00-00-00-00-0a".into())
        );
    }

    #[test]
    fn root_is_squashed_where_the_config_says() {
        let root = Cred {
            uid: 0,
            gid: 0,
            gids: vec![0],
        };
        let user = Cred {
            uid: 1000,
            gid: 1000,
            gids: vec![],
        };
        let ro = Place::Tree(false);
        let rw = Place::Tree(true);
        let w = layout(Squash::Writable);
        assert!(w.cred(Some(&root), &ro).is_root());
        assert!(!w.cred(Some(&root), &rw).is_root());
        assert!(!w.cred(Some(&root), &Place::Area("a".into())).is_root());
        assert!(!layout(Squash::All).cred(Some(&root), &ro).is_root());
        assert!(layout(Squash::None).cred(Some(&root), &rw).is_root());
        assert_eq!(w.cred(Some(&user), &rw), user);
        assert_eq!(w.cred(None, &ro), Cred::nobody());
    }

    #[test]
    fn areas_are_named_by_mac_or_by_config() {
        let l = layout(Squash::All);
        assert_eq!(
            l.area_id(Some(Mac([2, 0, 0, 0, 0, 0x0a]))).as_deref(),
            Some("02-00-00-00-00-0a")
        );
        assert_eq!(
            l.area_id(Some(Mac([2, 0, 0, 0, 0, 9]))).as_deref(),
            Some("kiosk")
        );
        assert_eq!(l.area_id(None), None);
    }

    #[test]
    fn the_directories_holding_the_areas_are_protected() {
        let l = layout(Squash::All);
        assert!(l.holds_areas(Zone::Tree, Path::new("var/clients")));
        assert!(l.holds_areas(Zone::Tree, Path::new("var")));
        assert!(!l.holds_areas(Zone::Tree, Path::new("var/log")));
        assert!(!l.holds_areas(Zone::Tree, Path::new("")));
        assert!(!l.holds_areas(Zone::Areas, Path::new("var")));
    }
}
