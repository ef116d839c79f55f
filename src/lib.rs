//! pxe-sidecar: a proxyDHCP + TFTP + NFS netboot server that explains itself.

pub mod bootp;
pub mod check;
pub mod clients;
pub mod config;
pub mod event;
pub mod files;
pub mod frame;
pub mod fuzzing;
pub mod http;
pub mod listen;
pub mod mac;
pub mod ndp;
pub mod nfs;
pub mod portmap;
pub mod privs;
pub mod probe;
pub mod proxy;
pub mod pxe;
pub mod replay;
pub mod rootfs;
pub mod serve;
pub mod status;
pub mod step;
pub mod text;
pub mod tftp;
pub mod timeline;
