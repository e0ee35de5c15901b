package costest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeSDKScript drives Tencent's Node.js SDK (cos-nodejs-sdk-v5) against the
// emulator the way its users configure it (Domain, ServiceDomain, Protocol)
// and prints one "ok <step>" line per step; any failure exits non-zero with
// the SDK's error.
const nodeSDKScript = `
const COS = require('cos-nodejs-sdk-v5');
const http = require('http');
const fs = require('fs');
const e = process.env;
const cos = new COS({SecretId: e.COS_ID, SecretKey: e.COS_KEY, Domain: e.COS_DOMAIN,
  ServiceDomain: e.COS_SERVICE_DOMAIN, Protocol: 'http:'});
const B = {Bucket: e.COS_BUCKET, Region: e.COS_REGION};
const step = (name, p) => p.then(r => { console.log('ok ' + name); return r; });
const get = (url) => new Promise((res, rej) => http.get(url, r => {
  let b = ''; r.on('data', d => b += d); r.on('end', () => res({status: r.statusCode, body: b}));
}).on('error', rej));
(async () => {
  await step('putObject', cos.putObject({...B, Key: 'node/a b+c.txt', Body: 'from node'}));
  const g = await step('getObject', cos.getObject({...B, Key: 'node/a b+c.txt'}));
  if (g.Body.toString() !== 'from node') throw new Error('getObject body ' + g.Body);
  await step('headObject', cos.headObject({...B, Key: 'node/a b+c.txt'}));
  const l = await step('getBucket', cos.getBucket({...B, Prefix: 'node/'}));
  if (l.Contents.length !== 1 || l.Contents[0].Key !== 'node/a b+c.txt') throw new Error('getBucket ' + JSON.stringify(l.Contents));
  const s = await step('getService', cos.getService({}));
  if (!s.Buckets.some(b => b.Name === e.COS_BUCKET)) throw new Error('getService ' + JSON.stringify(s.Buckets));
  const url = cos.getObjectUrl({...B, Key: 'node/a b+c.txt', Sign: true});
  // The Node SDK writes the raw ';' of q-sign-time, as COS's documentation
  // does (Go's query parser would drop that pair).
  if (!/q-sign-time=[0-9]+;[0-9]+/.test(url)) throw new Error('presigned URL without a raw ";": ' + url);
  const r = await get(url);
  if (r.status !== 200 || r.body !== 'from node') throw new Error('presigned ' + url + ': ' + r.status + ' ' + r.body);
  console.log('ok presignedGet');
  const file = e.COS_TMP + '/big.bin';
  fs.writeFileSync(file, Buffer.alloc(3 * 1024 * 1024 + 17, 7));
  await step('sliceUploadFile', cos.sliceUploadFile({...B, Key: 'node/big.bin', FilePath: file, ChunkSize: 1024 * 1024}));
  const h = await cos.headObject({...B, Key: 'node/big.bin'});
  if (h.headers['content-length'] !== String(3 * 1024 * 1024 + 17)) throw new Error('big object ' + JSON.stringify(h.headers));
  await step('deleteMultipleObject', cos.deleteMultipleObject({...B, Objects: [{Key: 'node/a b+c.txt'}, {Key: 'node/big.bin'}]}));
})().catch(err => { console.error(JSON.stringify(err)); process.exit(1); });
`

// nodeSDKSteps are the steps nodeSDKScript reports.
var nodeSDKSteps = []string{"putObject", "getObject", "headObject", "getBucket", "getService", "presignedGet", "sliceUploadFile", "deleteMultipleObject"}

// TestNodeSDK runs Tencent's Node.js SDK against the emulator. It needs
// node and the cos-nodejs-sdk-v5 package: COSTEST_NODE_SDK=install installs
// the package with npm into a temporary directory, COSTEST_NODE_SDK=<dir>
// uses a directory whose node_modules holds it; otherwise the test skips.
func TestNodeSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Node.js SDK check starts node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir := os.Getenv("COSTEST_NODE_SDK")
	switch dir {
	case "":
		t.Skip("COSTEST_NODE_SDK is not set (install, or a directory whose node_modules holds cos-nodejs-sdk-v5)")
	case "install":
		dir = t.TempDir()
		out, err := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "cos-nodejs-sdk-v5").CombinedOutput()
		if err != nil {
			t.Fatalf("npm install cos-nodejs-sdk-v5: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "cos-nodejs-sdk-v5")); err != nil {
		t.Fatalf("COSTEST_NODE_SDK=%s: no node_modules/cos-nodejs-sdk-v5 there: %v", dir, err)
	}
	script := filepath.Join(dir, "costest-node-check.js")
	if err := os.WriteFile(script, []byte(nodeSDKScript), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, Options{})
	cmd := exec.Command(node, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"COS_ID="+srv.SecretID, "COS_KEY="+srv.SecretKey, "COS_BUCKET="+srv.Bucket, "COS_REGION="+srv.Region,
		"COS_DOMAIN="+strings.TrimPrefix(srv.URL, "http://"),
		"COS_SERVICE_DOMAIN="+strings.TrimPrefix(srv.ServiceURL, "http://"),
		"COS_TMP="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Node.js SDK against the emulator: %v\n%s", err, out)
	}
	for _, s := range nodeSDKSteps {
		if !strings.Contains(string(out), "ok "+s+"\n") {
			t.Errorf("step %s not reported ok:\n%s", s, out)
		}
	}
}
