// Package dnspkt records the DNS queries and responses of the host from a
// packet socket (AF_PACKET, every interface, loopback included) with a
// classic socket filter that passes only UDP and TCP with port 53 ([Filter]),
// so every other packet is dropped in the kernel before it is copied. Each
// message is parsed with golang.org/x/net/dns/dnsmessage under limits
// ([Decode]); DNS over TCP is split at its length prefixes. The client
// socket's owner comes from the connection owners of package sockowner (the
// fib lookup of a connected UDP socket, the TCP connect), so a row names the
// process that asked. Packet socket drops (PACKET_STATISTICS) become gap
// rows. DNS over TLS (853) and over HTTPS are encrypted and out of reach.
package dnspkt
