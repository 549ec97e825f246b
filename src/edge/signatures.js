// Public-key signature checks with WebCrypto, for the keys edgestream-core
// admitted (src/edge/signatures.rs). The key comes as its canonical public
// JWK, so equal keys have equal text, and the imported CryptoKey is kept
// per key and algorithm: an import costs more than a verify, and an
// isolate sees the same few keys on every request.
//
// Anything that fails (an import WebCrypto refuses, a verify that throws)
// answers false: a token is accepted only on WebCrypto's explicit yes.

const ALGORITHMS = {
  RS256: { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, verify: { name: 'RSASSA-PKCS1-v1_5' } },
  // RFC 7518 section 3.5: the salt is as long as the hash.
  PS256: { import: { name: 'RSA-PSS', hash: 'SHA-256' }, verify: { name: 'RSA-PSS', saltLength: 32 } },
  ES256: { import: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { import: { name: 'Ed25519' }, verify: { name: 'Ed25519' } },
};

// Keys are configured or come from one JWKS (64 keys at most), each usable
// with at most two algorithms; past this many the cache starts over rather
// than grow with rotations.
const MAX_KEYS = 256;
const imported = new Map();

function cryptoKey(algorithm, jwk) {
  const id = `${algorithm} ${jwk}`;
  let key = imported.get(id);
  if (key === undefined) {
    if (imported.size >= MAX_KEYS) imported.clear();
    key = crypto.subtle.importKey('jwk', JSON.parse(jwk), ALGORITHMS[algorithm].import, false, ['verify']);
    // A refused import is not kept, so that it is not mistaken for a key.
    key.catch(() => imported.delete(id));
    imported.set(id, key);
  }
  return key;
}

// `signature` and `signingInput` are views of the module's memory, which
// may move while the import is awaited: they are copied first.
export async function verifySignature(algorithm, jwk, signature, signingInput) {
  const params = ALGORITHMS[algorithm];
  if (params === undefined) return false;
  signature = signature.slice();
  signingInput = signingInput.slice();
  try {
    const key = await cryptoKey(algorithm, jwk);
    return (await crypto.subtle.verify(params.verify, key, signature, signingInput)) === true;
  } catch {
    return false;
  }
}
