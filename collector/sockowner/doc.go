// Package sockowner names the process that opened a short-lived outbound
// connection, from kernel tracepoint samples, so that the socket source can
// attribute the sock_diag rows of a connection that closed before any dump
// saw it (the destroy notification carries no pid).
//
// TCP: sock:inet_sock_set_state filtered in the kernel to the CLOSE→SYN_SENT
// transition (fired by connect(2) in the connecting task, source port still
// 0) and every transition out of SYN_SENT (usually in softirq, with the full
// 4-tuple). The two records are joined on the socket's kernel address
// (skaddr). The filter also lets through the accepted end becoming
// ESTABLISHED and a socket becoming a listener, which name no owner but,
// with the connects, tell the socket source when a TCP dump can find a
// socket it has not seen ([Source.Changes]). Connected UDP: fib:fib_table_lookup and fib6:fib6_table_lookup
// fired by connect(2) (the port is already bound), filtered to UDP.
//
// The decoders (over sample bytes, with field offsets from the tracefs
// format files) and the join [Tracker] (bounded memory) are pure; [Source]
// reads the rings of package tracepoint into a Tracker. docs/design.md
// ("Connection owners from tracepoints") has the edge cases and the
// measurements.
package sockowner
