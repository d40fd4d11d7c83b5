//! Byte builders of every CDB the tests send.

fn be24(n: u32) -> [u8; 3] {
    let b = n.to_be_bytes();
    [b[1], b[2], b[3]]
}

pub fn tur() -> Vec<u8> {
    vec![0x00, 0, 0, 0, 0, 0]
}

pub fn request_sense(alloc: u8) -> Vec<u8> {
    vec![0x03, 0, 0, 0, alloc, 0]
}

pub fn inquiry(evpd: bool, page: u8, alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x12, u8::from(evpd), page, a[0], a[1], 0]
}

pub fn report_luns(alloc: u32) -> Vec<u8> {
    let mut c = vec![0xA0, 0, 0, 0, 0, 0];
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

pub fn rsoc(options: u8, opcode: u8, sa: u16, alloc: u32) -> Vec<u8> {
    let mut c = vec![0xA3, 0x0C, options, opcode];
    c.extend_from_slice(&sa.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

pub fn mode_sense6(dbd: bool, pc: u8, page: u8, alloc: u8) -> Vec<u8> {
    vec![0x1A, if dbd { 0x08 } else { 0 }, (pc << 6) | page, 0, alloc, 0]
}

pub fn mode_sense10(dbd: bool, pc: u8, page: u8, alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x5A, if dbd { 0x08 } else { 0 }, (pc << 6) | page, 0, 0, 0, 0, a[0], a[1], 0]
}

pub fn mode_select6(len: u8) -> Vec<u8> {
    vec![0x15, 0x10, 0, 0, len, 0]
}

pub fn mode_select10(len: u16) -> Vec<u8> {
    let a = len.to_be_bytes();
    vec![0x55, 0x10, 0, 0, 0, 0, 0, a[0], a[1], 0]
}

pub fn log_sense(page: u8, alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x4D, 0, 0x40 | page, 0, 0, 0, 0, a[0], a[1], 0]
}

pub fn reserve6() -> Vec<u8> {
    vec![0x16, 0, 0, 0, 0, 0]
}

pub fn release6() -> Vec<u8> {
    vec![0x17, 0, 0, 0, 0, 0]
}

pub fn prevent(on: bool) -> Vec<u8> {
    vec![0x1E, 0, 0, 0, u8::from(on), 0]
}

pub fn rewind() -> Vec<u8> {
    vec![0x01, 0, 0, 0, 0, 0]
}

pub fn read_block_limits() -> Vec<u8> {
    vec![0x05, 0, 0, 0, 0, 0]
}

pub fn read6(fixed: bool, sili: bool, len: u32) -> Vec<u8> {
    let l = be24(len);
    vec![0x08, u8::from(fixed) | if sili { 2 } else { 0 }, l[0], l[1], l[2], 0]
}

pub fn write6(fixed: bool, len: u32) -> Vec<u8> {
    let l = be24(len);
    vec![0x0A, u8::from(fixed), l[0], l[1], l[2], 0]
}

pub fn write_filemarks(count: u32, immed: bool) -> Vec<u8> {
    let l = be24(count);
    vec![0x10, u8::from(immed), l[0], l[1], l[2], 0]
}

/// SPACE(6): code 0 blocks, 1 filemarks, 3 end of data.
pub fn space6(code: u8, count: i32) -> Vec<u8> {
    let c = count.to_be_bytes();
    vec![0x11, code, c[1], c[2], c[3], 0]
}

pub fn space16(code: u8, count: i64) -> Vec<u8> {
    let mut c = vec![0x91, code, 0, 0];
    c.extend_from_slice(&count.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 0]);
    c
}

pub fn locate10(object: u32) -> Vec<u8> {
    let mut c = vec![0x2B, 0, 0];
    c.extend_from_slice(&object.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0]);
    c
}

/// LOCATE(16): dest type 0 object, 1 file, 3 end of data.
pub fn locate16(dest_type: u8, id: u64) -> Vec<u8> {
    let mut c = vec![0x92, dest_type << 3, 0, 0];
    c.extend_from_slice(&id.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 0]);
    c
}

pub fn read_position(service_action: u8) -> Vec<u8> {
    vec![0x34, service_action, 0, 0, 0, 0, 0, 0, 32, 0]
}

pub fn load_unload(load: bool) -> Vec<u8> {
    vec![0x1B, 0, 0, 0, u8::from(load), 0]
}

pub fn erase() -> Vec<u8> {
    vec![0x19, 0x01, 0, 0, 0, 0]
}

pub fn report_density(media: bool, alloc: u16) -> Vec<u8> {
    let a = alloc.to_be_bytes();
    vec![0x44, u8::from(media), 0, 0, 0, 0, 0, a[0], a[1], 0]
}

pub fn read_element_status(voltag: bool, etype: u8, start: u16, count: u16, dvcid: bool, alloc: u32) -> Vec<u8> {
    let mut c = vec![0xB8, if voltag { 0x10 } else { 0 } | etype];
    c.extend_from_slice(&start.to_be_bytes());
    c.extend_from_slice(&count.to_be_bytes());
    c.push(u8::from(dvcid));
    c.extend_from_slice(&be24(alloc));
    c.extend_from_slice(&[0, 0]);
    c
}

pub fn move_medium(transport: u16, source: u16, dest: u16) -> Vec<u8> {
    let mut c = vec![0xA5, 0];
    c.extend_from_slice(&transport.to_be_bytes());
    c.extend_from_slice(&source.to_be_bytes());
    c.extend_from_slice(&dest.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 0]);
    c
}

pub fn init_element_status() -> Vec<u8> {
    vec![0x07, 0, 0, 0, 0, 0]
}

pub fn init_element_status_range(range: bool, start: u16, count: u16) -> Vec<u8> {
    let mut c = vec![0x37, u8::from(range)];
    c.extend_from_slice(&start.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c.extend_from_slice(&count.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

pub fn position_to_element(transport: u16, dest: u16) -> Vec<u8> {
    let mut c = vec![0x2B, 0];
    c.extend_from_slice(&transport.to_be_bytes());
    c.extend_from_slice(&dest.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 0]);
    c
}

pub fn read_attribute(service_action: u8, first: u16, alloc: u32) -> Vec<u8> {
    let mut c = vec![0x8C, service_action, 0, 0, 0, 0, 0, 0];
    c.extend_from_slice(&first.to_be_bytes());
    c.extend_from_slice(&alloc.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

pub fn write_attribute(len: u32) -> Vec<u8> {
    let mut c = vec![0x8D, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c.extend_from_slice(&len.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}
