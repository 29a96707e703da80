// Package tracepoint reads the kernel's static tracepoints through
// perf_event_open ring buffers, without any BPF program: the interface
// "perf record -e sched:…" uses.
//
// A Set opens a list of tracepoints ("sys:name", each with an optional kernel
// filter) on every online CPU and joins the outputs of one CPU into one ring
// (PERF_EVENT_IOC_SET_OUTPUT). The kernel writes samples into the rings in
// the context of the task that hit the tracepoint; the caller drains them in
// batches (Set.Drain), so there is no syscall and no wakeup per event.
// Samples of all CPUs come out merged by time; every PERF_RECORD_LOST comes
// out as a Lost record with the count and the interval it covers, and so do
// losses no lost record said yet, from the events' lost counters, once the
// Set is disabled and every CPUCheckEvery.
//
// Tracepoint ids and field layouts are read from tracefs at start
// (events/<sys>/<name>/{id,format}; FS mounts tracefs privately when it is
// not mounted): they differ between kernel builds and are never hard-coded.
//
// An optional doorbell (Options.Doorbell, DoorbellAlso) wakes an idle
// caller at the first hit of one of its tracepoints, and is not polled while
// events flow.
//
// The parsers (ParseFormat, ParseHeader, ParseSample, ParseLost, ParseArgv
// and the field accessors) are pure functions over bytes, fuzzed and tested
// with formats and samples captured from this kernel (testdata/; go test
// -run Capture -update rewrites them). docs/design.md ("Tracepoint capture")
// has the rationale and the measurements.
package tracepoint
