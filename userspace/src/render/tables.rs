//! Renders the configuration into the entries the XDP program's maps hold
//! and the userspace server replays: one NAK block per subnet; per
//! reservation a compact `Machine` (address, host name) and its template
//! set, one OFFER/ACK template per boot variant, which every machine with
//! the same subnet, boot profile and options shares.
//!
//! A template is a reply rendered with the machine's own parts left out:
//! yiaddr zero, no host name, and its MAC address as text (in a per-machine
//! boot URL) blanked, where `mac_off` says. Where the MAC appears is found by
//! rendering twice with two MACs that differ in every hex digit, so the
//! templates never depend on guessing what a renderer does with it.

use std::net::Ipv4Addr;

use stormboot_common::maps::{mac_text, variant, Block, Machine, Subnet, MAC_TEXT_LEN, NAME_MAX};

use super::{RenderError, ReplySpec};
use crate::bootfile;
use crate::compact::{List, Text};
use crate::config::{self, Config};
use crate::render;

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {what}: {source}")]
pub struct TablesError {
    pub origin: String,
    pub what: String,
    pub source: RenderError,
}

/// What the reply to this reservation says.
pub fn reply_spec<'a>(cfg: &'a Config, r: &'a config::Reservation) -> ReplySpec<'a> {
    ReplySpec::new(
        cfg,
        &cfg.subnets[usize::from(r.subnet)],
        Some(r),
        r.ip,
        r.hostname.as_deref(),
    )
}

/// The subnet array, index for index with `cfg.subnets`.
pub fn subnet_entries(cfg: &Config) -> Result<Vec<Subnet>, TablesError> {
    let nak = render::nak_block(cfg.server.address).map_err(|source| TablesError {
        origin: "server".into(),
        what: "NAK".into(),
        source,
    })?;
    Ok(cfg
        .subnets
        .iter()
        .map(|s| Subnet {
            net: s.net.network().octets(),
            mask: s.net.netmask().octets(),
            server_id: cfg.server.address.octets(),
            valid: 1,
            nak,
        })
        .collect())
}

/// What a machine's templates are rendered from, beside the
/// configuration: machines with equal keys share one template set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetKey {
    subnet: u16,
    profile: Option<u16>,
    allow_pxe: bool,
    options: List<config::CustomOption>,
    boot_file: Option<Text>,
    next_server: Option<Ipv4Addr>,
    /// A host name too long for `Machine::name`, rendered into the templates.
    long_name: Option<String>,
    /// The MAC, when its replies name it other than where `mac_off` can
    /// say: such a machine's templates are its own.
    mac: Option<[u8; 6]>,
}

/// A host name too long for `Machine::name`.
fn long_name(h: &str) -> Option<&str> {
    (h.len() > NAME_MAX).then_some(h)
}

/// The key of `r`'s template set.
pub fn set_key(r: &config::Reservation) -> SetKey {
    // Every field named: a field added to reservations must be sorted
    // here into what templates depend on and what they do not.
    let config::Reservation {
        mac: _,
        ip: _,
        hostname,
        subnet,
        origin: _,
        options,
        profile,
        allow_pxe,
        boot_file,
        next_server,
        label: _,
    } = r;
    SetKey {
        subnet: *subnet,
        profile: *profile,
        allow_pxe: *allow_pxe,
        options: options.clone(),
        boot_file: boot_file.clone(),
        next_server: *next_server,
        long_name: hostname.as_deref().and_then(long_name).map(String::from),
        mac: None,
    }
}

/// A template set: the template of each boot variant a machine has, the
/// plain one first.
#[derive(Clone)]
pub struct Templates {
    pub key: SetKey,
    pub blocks: Vec<(u16, Block)>,
}

impl Templates {
    /// The template a request of variant `v` gets: its own, else the plain
    /// one, as the program looks them up.
    pub fn for_variant(&self, v: u16) -> &Block {
        &self
            .blocks
            .iter()
            .find(|(w, _)| *w == v)
            .unwrap_or(&self.blocks[0])
            .1
    }

    /// The longest of them, for the check that a host name still fits.
    pub fn max_end(&self) -> usize {
        self.blocks
            .iter()
            .map(|(_, b)| b.end_off as usize)
            .max()
            .unwrap_or(0)
    }
}

/// `r`'s template set, rendered: its key and a template per boot variant.
pub fn templates(cfg: &Config, r: &config::Reservation) -> Result<Templates, TablesError> {
    let mut key = set_key(r);
    let other: [u8; 6] = r.mac.map(|b| !b);
    let mut blocks = Vec::new();
    let mut own = false;
    for v in variant::ALL {
        let Some(a) = variant_block(cfg, r, v, r.mac, key.long_name.as_deref())? else {
            continue;
        };
        let b = variant_block(cfg, r, v, other, key.long_name.as_deref())?;
        match b.and_then(|b| blank_mac(&a, &b, &r.mac, &other)) {
            Some(t) => blocks.push((v, t)),
            None => {
                own = true;
                blocks.push((v, a));
            }
        }
    }
    if own {
        // The MAC stays in every template of the set, which is then its own.
        key.mac = Some(r.mac);
        blocks = Vec::new();
        for v in variant::ALL {
            if let Some(a) = variant_block(cfg, r, v, r.mac, key.long_name.as_deref())? {
                blocks.push((v, a));
            }
        }
    }
    Ok(Templates { key, blocks })
}

/// `a` (rendered for `mac_a`) with the MAC's text blanked where `b`
/// (rendered for `mac_b`, which differs from `mac_a` in every hex digit)
/// differs from it, and `mac_off` saying where; None when the two differ
/// other than by at most two whole MAC texts.
fn blank_mac(a: &Block, b: &Block, mac_a: &[u8; 6], mac_b: &[u8; 6]) -> Option<Block> {
    if (a.type_off, a.end_off) != (b.type_off, b.end_off) {
        return None;
    }
    let (ta, tb) = (mac_text(mac_a), mac_text(mac_b));
    let mut t = *a;
    let mut slots = 0;
    let mut i = 0;
    while i < a.bytes.len() {
        if a.bytes[i] == b.bytes[i] {
            i += 1;
            continue;
        }
        let run = i..i + MAC_TEXT_LEN;
        if slots == t.mac_off.len()
            || run.end > a.bytes.len()
            || a.bytes[run.clone()] != ta
            || b.bytes[run.clone()] != tb
        {
            return None;
        }
        t.bytes[run].fill(0);
        t.mac_off[slots] = i as u16;
        slots += 1;
        i += MAC_TEXT_LEN;
    }
    t.csum = stormboot_common::csum::sum_bytes(&t.bytes);
    Some(t)
}

/// `r`'s own part of its replies, naming its template set `set`.
pub fn machine(r: &config::Reservation, set: u32) -> Machine {
    let mut m = Machine {
        ip: r.ip.octets(),
        set,
        subnet: r.subnet,
        name_sum: 0,
        name_opt_len: 0,
        flags: 0,
        name_opt: [0; NAME_MAX + 2],
    };
    if let Some(h) = r.hostname.as_deref().filter(|h| h.len() <= NAME_MAX) {
        if !h.is_empty() {
            m.name_opt[0] = stormboot_common::layout::opt::HOSTNAME;
            m.name_opt[1] = h.len() as u8;
            m.name_opt[2..2 + h.len()].copy_from_slice(h.as_bytes());
            m.name_opt_len = 2 + h.len() as u8;
            m.name_sum =
                stormboot_common::csum::fold(stormboot_common::csum::sum_bytes(&m.name_opt));
        }
    }
    m
}

/// An error naming `r` when its host name does not fit beside the longest
/// of its templates, as a whole reply that long would not.
pub fn check_fits(r: &config::Reservation, m: &Machine, max_end: usize) -> Result<(), TablesError> {
    let end = max_end + m.name_opt_len as usize;
    if end >= stormboot_common::layout::BLOCK_LEN {
        return Err(TablesError {
            origin: r.origin.to_string(),
            what: format!("reservation {}", crate::frame::format_mac(&r.mac)),
            source: RenderError::TooLong(end + 1),
        });
    }
    Ok(())
}

/// What the entry for boot variant `v` tells the machine to boot: None
/// when it has no profile or no boot file for `v`.
pub fn reservation_boot(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
) -> Option<bootfile::BootSpec> {
    reservation_boot_for(cfg, r, v, r.mac)
}

fn reservation_boot_for(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
    mac: [u8; 6],
) -> Option<bootfile::BootSpec> {
    if r.boot_file.is_some() || r.next_server.is_some() {
        // The machine's own boot file answers every architecture (one
        // plain entry), as a dhcpd host's `filename` does.
        if v != variant::PLAIN {
            return None;
        }
        Some(bootfile::BootSpec {
            next_server: r.next_server.unwrap_or(cfg.server.address),
            file: r.boot_file.as_deref().unwrap_or_default().to_owned(),
            vendor_class: None,
            pxe_discovery_control: false,
            ipxe_no_proxydhcp: false,
        })
    } else {
        match bootfile::reservation_profile(cfg, r) {
            Some(_) => bootfile::boot_spec(cfg, v, mac),
            None => None,
        }
    }
}

/// Whether the reply a request of variant `v` gets (its variant's entry,
/// else the plain one, as the program looks them up) carries a boot file.
pub fn reservation_boots(cfg: &Config, r: &config::Reservation, v: u16) -> bool {
    reservation_boot(cfg, r, v)
        .or_else(|| reservation_boot(cfg, r, variant::PLAIN))
        .is_some()
}

/// The reply block of boot variant `v` rendered for `mac` with yiaddr zero
/// and host name `name`: None when the machine has no boot file for `v`
/// (it is then answered from its plain one).
fn variant_block(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
    mac: [u8; 6],
    name: Option<&str>,
) -> Result<Option<Block>, TablesError> {
    let boot = reservation_boot_for(cfg, r, v, mac);
    if v != variant::PLAIN && boot.is_none() {
        return Ok(None);
    }
    let err = |source| TablesError {
        origin: r.origin.to_string(),
        what: format!(
            "reservation {} (boot variant {v})",
            crate::frame::format_mac(&r.mac)
        ),
        source,
    };
    if cfg.server.mode == config::Mode::Proxy && v != variant::PLAIN {
        // A proxy tells booting machines where to boot, nothing else.
        return render::proxy_block(cfg, mac, v).map_err(err);
    }
    let s = &cfg.subnets[usize::from(r.subnet)];
    let spec = ReplySpec::new(cfg, s, Some(r), Ipv4Addr::UNSPECIFIED, name).with_boot(s, boot);
    render::reply_block(&spec).map(Some).map_err(err)
}

/// Everything the maps need for one reservation: its template set and its
/// own part (whose `set` the dataplane fills in).
#[derive(Clone)]
pub struct Rendered {
    pub templates: Templates,
    pub machine: Machine,
}

/// Renders one reservation; an error names it when a reply would not fit.
pub fn reservation_entries(cfg: &Config, r: &config::Reservation) -> Result<Rendered, TablesError> {
    let templates = templates(cfg, r)?;
    let machine = machine(r, 0);
    check_fits(r, &machine, templates.max_end())?;
    Ok(Rendered { templates, machine })
}

/// The whole OFFER/ACK block a request of boot variant `v` from `r` gets
/// (its variant's, else its plain one), byte for byte what the program
/// makes of the template and the machine: rendered with the MAC in place
/// of its blanks, which `render::complete` writes again.
pub fn reservation_block(
    cfg: &Config,
    r: &config::Reservation,
    v: u16,
) -> Result<Block, TablesError> {
    let long = r.hostname.as_deref().and_then(long_name);
    let block = match variant_block(cfg, r, v, r.mac, long)? {
        Some(b) => b,
        None => variant_block(cfg, r, variant::PLAIN, r.mac, long)?
            .expect("every reservation has a plain reply"),
    };
    render::assemble(&block, &machine(r, 0)).map_err(|source| TablesError {
        origin: r.origin.to_string(),
        what: format!("reservation {}", crate::frame::format_mac(&r.mac)),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::Path;

    const CFG: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
                       [boot]\n\n[[profile]]\nname = \"d\"\nkernel = \"vmlinuz\"\n\n\
                       [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n\
                       [[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.9\"\nprofile = \"d\"\n";

    fn variants(text: &str) -> Vec<u16> {
        let cfg = Config::from_str(text, Path::new("stormboot.toml")).unwrap();
        templates(&cfg, &cfg.reservations[0])
            .unwrap()
            .blocks
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn allow_pxe_false_leaves_only_the_plain_reply() {
        let booting = variants(CFG);
        assert!(
            booting.len() > 1 && booting.contains(&variant::PLAIN),
            "{booting:?}"
        );
        let plain = variants(&format!("{CFG}allow_pxe = false\n"));
        assert_eq!(plain, vec![variant::PLAIN]);
    }

    /// A reservation's own boot file and next server are in its one
    /// (plain) reply, in the BOOTP fields and options 66/67, and the
    /// profile's per-architecture variants give way to them.
    #[test]
    fn a_reservations_own_boot_file_and_next_server_are_rendered() {
        use dhcproto::{Decodable, Decoder};
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let mut r = cfg.reservations[0].clone();
        r.boot_file = Some("pxelinux.0".into());
        r.next_server = Some(Ipv4Addr::new(10, 50, 0, 7));
        let set = templates(&cfg, &r).unwrap();
        assert_eq!(set.blocks.len(), 1);
        assert_eq!(set.blocks[0].0, variant::PLAIN);
        let block = &reservation_block(&cfg, &r, variant::PXE_BIOS).unwrap();
        let m = dhcproto::v4::Message::decode(&mut Decoder::new(&block.bytes)).unwrap();
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 50, 0, 7));
        assert_eq!(
            m.fname().unwrap().split(|b| *b == 0).next(),
            Some(&b"pxelinux.0"[..])
        );
        assert_eq!(
            m.opts().get(dhcproto::v4::OptionCode::BootfileName),
            Some(&dhcproto::v4::DhcpOption::BootfileName(
                b"pxelinux.0".to_vec()
            ))
        );
        assert_eq!(
            m.opts().get(dhcproto::v4::OptionCode::TFTPServerName),
            Some(&dhcproto::v4::DhcpOption::TFTPServerName(
                b"10.50.0.7".to_vec()
            ))
        );
    }

    /// What makes sharing safe: a set's templates are the same bytes
    /// whichever of its machines they are rendered for, with nothing of the
    /// machine left in them.
    #[test]
    fn machines_of_one_subnet_and_profile_share_templates_without_their_own_parts() {
        let text = format!(
            "{CFG}hostname = \"node9\"\n\n[[reservation]]\nmac = \"52:54:00:00:00:0a\"\n\
             ip = \"10.50.0.10\"\nprofile = \"d\"\n"
        );
        let cfg = Config::from_str(&text, Path::new("stormboot.toml")).unwrap();
        let (a, b) = (&cfg.reservations[0], &cfg.reservations[1]);
        assert_eq!(set_key(a), set_key(b));
        let (ta, tb) = (templates(&cfg, a).unwrap(), templates(&cfg, b).unwrap());
        assert_eq!(ta.key, set_key(a), "no MAC in the key: it is blanked");
        assert_eq!(ta.blocks.len(), tb.blocks.len());
        for ((va, x), (vb, y)) in ta.blocks.iter().zip(&tb.blocks) {
            assert_eq!(va, vb);
            assert_eq!(x.bytes, y.bytes, "variant {va}");
            assert_eq!((x.csum, x.mac_off), (y.csum, y.mac_off), "variant {va}");
            assert_eq!(x.bytes[16..20], [0; 4], "yiaddr is the machine's");
            assert!(!x.bytes.windows(5).any(|w| w == b"node9"));
        }
        let ipxe = ta.for_variant(variant::IPXE);
        let slots: Vec<u16> = ipxe.mac_off.into_iter().filter(|o| *o != 0).collect();
        assert_eq!(
            slots.len(),
            2,
            "the script URL in the file field and option 67"
        );
        for o in slots {
            let o = o as usize;
            assert_eq!(ipxe.bytes[o..o + 17], [0; 17]);
            assert_eq!(ipxe.bytes[o - 1], b'/', "the MAC is the URL's path segment");
        }
        // What the program sends is what a whole render says.
        let whole = reservation_block(&cfg, a, variant::IPXE).unwrap();
        let m = machine(a, 1);
        assert_eq!(render::assemble(ipxe, &m).unwrap().end_off, whole.end_off);

        let mut long = b.clone();
        long.hostname = Some("x".repeat(NAME_MAX + 1).into());
        assert_ne!(
            set_key(&long),
            set_key(b),
            "a long name is in the templates"
        );
        assert_eq!(machine(&long, 1).name_opt_len, 0);
    }
}
