// Package receiver is the server side of the transport: an embedded SSH
// server with a write-only SFTP drop box per registered host, and the
// registration endpoint.
package receiver
