import { render } from 'preact';
import { session } from './api/client';
import { App } from './app';
import './styles.css';

render(<App />, document.getElementById('app') as HTMLElement);
// A tm_refresh cookie from an earlier visit signs the user in without the form.
void session.restore();
