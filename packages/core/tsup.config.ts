import { packageBuild } from '../../tsup.shared';

// proto.ts (the protobufjs encoder) as an entry of its own lands in a chunk of its own instead of one
// shared with code the browser runtime uses (dtype, tensors), so an app bundle that never encodes a
// model leaves protobufjs out (packages/pipeline/test/web-bundle.test.ts).
export default packageBuild(['src/index.ts', 'src/node.ts', 'src/web.ts', 'src/testing.ts', 'src/onnx/proto.ts']);
