#!/usr/bin/env node
// Development entry point: same as run.js but with oclif's development mode
// (stack traces on errors). Run `npm run build` first; commands load from dist/.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { execute } from '@oclif/core';

await execute({ development: true, dir: import.meta.url });
