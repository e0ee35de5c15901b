// Package testenv is the one test environment of this module: a COS
// emulator started for a test, the driver configuration that addresses it,
// reproducible content, and the processes, ports and buffers that tests of
// the binaries need. Every package's tests use it, the root package's own
// tests included, which is why it imports costest and never the root
// package: a test of package cos that imported something importing cos
// would be an import cycle.
//
// The registry parts (an in-process registry, the blob upload protocol,
// images) are in the sub-package registrytest, so that the root package's
// tests do not build the registry application.
package testenv
