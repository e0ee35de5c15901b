// Package s3compat proves costest's S3-compatible surface with independent
// clients, unchanged: AWS SDK for Go v1 (the one the upstream s3-aws storage
// driver uses) and v2, and upstream distribution's own s3-aws driver test
// suite. It is a module of its own so the AWS SDKs stay out of the driver's
// dependencies; .ci/run runs it.
package s3compat
