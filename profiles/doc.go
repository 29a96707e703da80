// Package profiles holds pofr's named collection profiles: data files
// (profiles/*.json) embedded in the collector and selected with --profile.
// A profile says what to record and how hard to try, so one binary fits most
// servers (default), busy build hosts (busy-host) and hosts under
// investigation (forensic); flags given to 'pofr-collector run' override
// single values.
//
// Design notes and measurements: docs/design.md, section "Collection profiles (profiles)".
package profiles
