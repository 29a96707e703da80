// Package uplink is the client side of the transport: registration with a
// pofr server and the push of sealed segments over SSH/SFTP.
package uplink
