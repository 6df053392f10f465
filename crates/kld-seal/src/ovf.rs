//! The OVA's descriptor (`.ovf`) and manifest (`.mf`), rendered from the
//! machine's description; the manifest is parsed back to verify it.

use crate::error::{Error, Result};

/// What the OVF says about the virtual machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The machine's name (also the file names' stem).
    pub name: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
}

impl Default for Machine {
    /// 2 CPUs and 2 GiB of memory: enough to boot any kld system.
    fn default() -> Machine {
        Machine {
            name: "kld".into(),
            cpus: 2,
            memory_mib: 2048,
        }
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The OVF 1.0 descriptor (the version VMware and VirtualBox import) for a
/// machine with one stream-optimized VMDK disk of `capacity` bytes, whose
/// file `disk_file` is `disk_size` bytes.
pub fn render_ovf(m: &Machine, disk_file: &str, disk_size: u64, capacity: u64) -> String {
    let name = xml(&m.name);
    let file = xml(disk_file);
    let (cpus, mem) = (m.cpus, m.memory_mib);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="kld" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{file}" ovf:id="file1" ovf:size="{disk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="nat">
      <Description>The nat network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian11_64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{mem}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{mem}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>nat</rasd:Connection>
        <rasd:ElementName>Ethernet 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// One manifest entry: `SHA256(FILE)= HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The file inside the OVA.
    pub file: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// The manifest text, one `SHA256(FILE)= HEX` line per entry.
pub fn render_manifest(entries: &[ManifestEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("SHA256({})= {}\n", e.file, e.sha256))
        .collect()
}

/// Parses a manifest of `SHA256(FILE)= HEX` lines.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestEntry>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bad = |why: &str| Error::Parse {
                what: format!("manifest line `{l}`"),
                why: why.into(),
            };
            let rest = l
                .strip_prefix("SHA256(")
                .ok_or_else(|| bad("not SHA256(...)"))?;
            let (file, sha) = rest.rsplit_once(")= ").ok_or_else(|| bad("no `)= `"))?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || file.is_empty() {
                return Err(bad("not a file and 64 hex digits"));
            }
            Ok(ManifestEntry {
                file: file.to_owned(),
                sha256: sha.to_ascii_lowercase(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ovf_carries_what_was_given() {
        let m = Machine {
            name: "web <1>".into(),
            cpus: 6,
            memory_mib: 12288,
        };
        let x = render_ovf(&m, "web.vmdk", 1234, 8 << 30);
        assert!(x.contains("<rasd:VirtualQuantity>6</rasd:VirtualQuantity>"));
        assert!(x.contains("<rasd:VirtualQuantity>12288</rasd:VirtualQuantity>"));
        assert!(x.contains(r#"ovf:capacity="8589934592""#));
        assert!(x.contains("web &lt;1&gt;"));
    }

    proptest! {
        #[test]
        fn manifest_parse_never_panics(s in "\\PC*(\n\\PC*){0,3}") {
            let _ = parse_manifest(&s);
        }

        #[test]
        fn manifest_round_trip(files in proptest::collection::vec(("[a-z0-9._-]{1,20}", "[0-9a-f]{64}"), 0..4)) {
            let entries: Vec<ManifestEntry> = files
                .into_iter()
                .map(|(file, sha256)| ManifestEntry { file, sha256 })
                .collect();
            prop_assert_eq!(parse_manifest(&render_manifest(&entries)).unwrap(), entries);
        }
    }
}
