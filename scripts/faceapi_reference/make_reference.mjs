// Reference outputs of the ORIGINAL face-api FaceExpressionNet for the PyTorch port's parity test.
//
//   npm ci && node make_reference.mjs
//
// Loads the original TF.js model files from ../../../shared/data/weights/faceapi, runs each PNG crop
// in tests/data/faceapi_reference/ through face-api's own input path (toNetInput -> NetInput ->
// FaceFeatureExtractor.forwardInput: toBatchTensor, mean subtraction, /255, dense blocks, avg pool)
// and writes tests/data/faceapi_reference/reference.json.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { PNG } from 'pngjs';

const require = createRequire(import.meta.url);
// the node-wasm bundle uses the pure-JS @tensorflow/tfjs (tfjs-node needs a native binary);
// it also registers the wasm backend, but we run on tfjs's 'cpu' backend (plain float32 JS kernels)
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const { tf } = faceapi;
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const modelDir = path.resolve(repo, '..', 'shared', 'data', 'weights', 'faceapi');
const cropDir = path.join(repo, 'tests', 'data', 'faceapi_reference');
const BACKEND = 'cpu';

function readPngRgb(file) {
  const png = PNG.sync.read(fs.readFileSync(file));
  if (png.width !== 112 || png.height !== 112) throw new Error(`${file}: expected 112x112, got ${png.width}x${png.height}`);
  const rgb = new Int32Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) {
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = png.data[4 * i + c]; // pngjs gives RGBA
  }
  return tf.tensor3d(rgb, [png.height, png.width, 3], 'int32');
}

const round = (values) => Array.from(values, (v) => Number(v.toPrecision(9))); // float32 round-trips

async function main() {
  await tf.setBackend(BACKEND);
  await tf.ready();
  const net = faceapi.nets.faceExpressionNet;
  await net.loadFromDisk(modelDir);

  const files = fs.readdirSync(cropDir).filter((f) => f.endsWith('.png')).sort();
  if (files.length === 0) throw new Error(`no PNG crops in ${cropDir}; run scripts/make_faceapi_reference_crops.py`);
  const crops = [];
  for (const file of files) {
    const image = readPngRgb(path.join(cropDir, file));
    const input = await faceapi.toNetInput(image);
    const pooled = net.faceFeatureExtractor.forwardInput(input); // [1, 1, 1, 256]
    const logits = net.runNet(input); // fc(pooled features), before softmax
    const probs = net.forwardInput(input); // softmax(runNet(input))
    const probabilities = round(probs.dataSync());
    crops.push({
      file,
      logits: round(logits.dataSync()),
      probabilities,
      embedding: round(pooled.dataSync()),
      top: faceapi.FACE_EXPRESSION_LABELS[probabilities.indexOf(Math.max(...probabilities))],
    });
    tf.dispose([image, pooled, logits, probs]);
  }

  const weightsBin = fs.readFileSync(path.join(modelDir, 'face_expression_model.bin'));
  const reference = {
    generator: 'scripts/faceapi_reference/make_reference.mjs',
    face_api_version: require('@vladmandic/face-api/package.json').version,
    tfjs_version: tf.version.tfjs,
    tfjs_core_version: tf.version['tfjs-core'],
    backend: tf.getBackend(),
    model: 'face_expression_model (original TF.js files from ../shared/data/weights/faceapi)',
    model_sha256: crypto.createHash('sha256').update(weightsBin).digest('hex'),
    labels: faceapi.FACE_EXPRESSION_LABELS,
    preprocessing: 'toNetInput(int32 [112,112,3] RGB tensor) -> toBatchTensor(112) -> float32 -> '
      + '(x - [122.782, 117.001, 104.298]) / 255',
    crops,
  };
  const out = path.join(cropDir, 'reference.json');
  const json = JSON.stringify(reference, null, 1) // number arrays on one line each
    .replace(/\[\n\s*([-+\d.e,\s]*?)\n\s*\]/g, (_, body) => `[${body.split(/,\s*/).join(', ')}]`);
  fs.writeFileSync(out, `${json}\n`);
  console.log(`wrote ${out}: ${crops.length} crops, tfjs ${reference.tfjs_version}, backend ${reference.backend}`);
  for (const c of crops) console.log(`  ${c.file}: ${c.top}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
