export { DnsServer, parseUpstream, upstreamsFromResolvConf, type Upstream, type DnsServerOptions, type DnsClient } from './server.js';
export { decide, dnsDomain, nameTable, type NameTable, type Decision } from './answer.js';
export { encodeReply, parseQuery, RCODE, TYPE_A, CLASS_IN, type Query } from './codec.js';
