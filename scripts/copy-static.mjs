#!/usr/bin/env node
// Part of `npm run build`: copies the status page's static files (zbk serve)
// next to the compiled server, where it reads them; tsc copies only .ts output.
import { cpSync, rmSync } from 'node:fs';

const to = 'dist/src/services/serve/static';
// A file removed from the source must not linger in dist (and ship).
rmSync(to, { recursive: true, force: true });
cpSync('src/services/serve/static', to, { recursive: true });
