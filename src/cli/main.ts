#!/usr/bin/env node
import { runCli } from "./cli-main.js";
import { runTrustingCaFile } from "./cli-trust.js";

process.exitCode = runTrustingCaFile() ?? (await runCli(process.argv.slice(2)));
