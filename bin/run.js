#!/usr/bin/env node
// Production entry point: runs the compiled commands in dist/.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
