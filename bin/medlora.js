#!/usr/bin/env node
// medlora command-line entry point: runs the compiled CLI (npm install / npm run build:ts produce dist/).
import { main } from '../dist/src/cli/main.js';
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
