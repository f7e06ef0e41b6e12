// Crafted overlay traffic for tests of who may send VXLAN to a host.

/** Sends `n` VXLAN datagrams (VNI `vni`, an inner broadcast ARP request) to `to`:4789 from namespace `ns`. */
export const INJECT = `
import socket, struct, sys
to, vni, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vx = struct.pack('!BBHI', 0x08, 0, 0, vni << 8)
eth = b'\\xff' * 6 + bytes.fromhex('02deadbeef01') + b'\\x08\\x06'
arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + bytes.fromhex('02deadbeef01') + socket.inet_aton('10.1.2.250') + b'\\x00' * 6 + socket.inet_aton('10.1.2.1')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(n): s.sendto(vx + eth + arp, (to, 4789))
`;
