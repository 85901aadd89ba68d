/**
 * frr.conf rendering: the view model printed through logic-free Handlebars templates
 * (templates/*.hbs). Same view → same bytes.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { findPackageRoot } from '../config/schema.js';
import type { FrrView } from './viewmodel.js';

export class FrrRenderer {
  private readonly template: Handlebars.TemplateDelegate<FrrView>;

  constructor(templateDir: string = join(findPackageRoot(), 'templates')) {
    // An isolated environment: no global helpers or partials can leak in.
    const hb = Handlebars.create();
    const opts = { noEscape: true, strict: true, preventIndent: true } as const;
    for (const f of readdirSync(templateDir).filter((n) => n.endsWith('.hbs') && n !== 'frr.conf.hbs')) {
      hb.registerPartial(f.slice(0, -4), hb.compile(readFileSync(join(templateDir, f), 'utf8'), opts));
    }
    this.template = hb.compile<FrrView>(readFileSync(join(templateDir, 'frr.conf.hbs'), 'utf8'), opts);
  }

  render(view: FrrView): string {
    const text = this.template(view);
    return text.endsWith('\n') ? text : `${text}\n`;
  }
}
