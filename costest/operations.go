package costest

// Operation names, as counted in Stats.
const (
	opHeadBucket              = "HeadBucket"
	opPutBucket               = "PutBucket"
	opListObjects             = "ListObjects"
	opPutObject               = "PutObject"
	opGetObject               = "GetObject"
	opHeadObject              = "HeadObject"
	opDeleteObject            = "DeleteObject"
	opDeleteMultipleObjects   = "DeleteMultipleObjects"
	opInitiateMultipartUpload = "InitiateMultipartUpload"
	opUploadPart              = "UploadPart"
	opUploadPartCopy          = "UploadPartCopy"
	opCompleteMultipartUpload = "CompleteMultipartUpload"
	opAbortMultipartUpload    = "AbortMultipartUpload"
	opListMultipartUploads    = "ListMultipartUploads"
	opListParts               = "ListParts"
	opCopyObject              = "CopyObject"
	opAppendObject            = "AppendObject"
	opGetService              = "GetService"
	opUnknown                 = "Unknown"
)

// Operation names of the bucket-configuration reads and writes.
const (
	opGetBucketVersioning   = "GetBucketVersioning"
	opGetBucketLifecycle    = "GetBucketLifecycle"
	opGetBucketAccelerate   = "GetBucketAccelerate"
	opPutBucketVersioning   = "PutBucketVersioning"
	opPutBucketLifecycle    = "PutBucketLifecycle"
	opPutBucketAccelerate   = "PutBucketAccelerate"
	opDeleteBucketLifecycle = "DeleteBucketLifecycle"
	opGetBucketLocation     = "GetBucketLocation"
)

// Operations are the operation names Stats counts and Misbehavior.Deny
// takes (a new operation constant belongs here too).
func Operations() []string {
	return []string{
		opHeadBucket, opPutBucket, opListObjects, opPutObject, opGetObject, opHeadObject,
		opDeleteObject, opDeleteMultipleObjects, opInitiateMultipartUpload, opUploadPart,
		opUploadPartCopy, opCompleteMultipartUpload, opAbortMultipartUpload, opListMultipartUploads,
		opListParts, opCopyObject, opAppendObject, opGetService,
		opGetBucketVersioning, opGetBucketLifecycle, opGetBucketAccelerate,
		opPutBucketVersioning, opPutBucketLifecycle, opPutBucketAccelerate, opDeleteBucketLifecycle,
		opGetBucketLocation,
	}
}
