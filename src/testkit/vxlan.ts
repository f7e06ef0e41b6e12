// Crafted overlay traffic for tests of who may send VXLAN to a host.

/**
 * Sends `n` VXLAN datagrams (VNI `vni`, an inner broadcast ARP request) to `to`:4789 from the namespace it
 * runs in. With a fourth argument, the outer source address is forged (a raw socket writes the IP header),
 * as a machine on the underlay posing as a registered host would.
 */
export const INJECT = `
import socket, struct, sys
to, vni, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vx = struct.pack('!BBHI', 0x08, 0, 0, vni << 8)
eth = b'\\xff' * 6 + bytes.fromhex('02deadbeef01') + b'\\x08\\x06'
arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + bytes.fromhex('02deadbeef01') + socket.inet_aton('10.1.2.250') + b'\\x00' * 6 + socket.inet_aton('10.1.2.1')
payload = vx + eth + arp
if len(sys.argv) > 4:
    udp = struct.pack('!HHHH', 40000, 4789, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, socket.inet_aton(sys.argv[4]), socket.inet_aton(to))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _ in range(n): s.sendto(ip + udp, (to, 0))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(n): s.sendto(payload, (to, 4789))
`;
